"""``modeldeploy fetch URI DEST``: put a model bundle where the server will read it.

Runs in the init container of every model server pod (the server image, so standard
library only). URI is http(s)://, file:// or a plain path; it names a bundle folder or a
``.tar.gz`` of one, which is unpacked (refusing links and paths that leave the folder).
DEST appears complete or not at all: the bundle is assembled beside it and renamed into
place. Network errors and 5xx answers are retried a bounded number of times; anything else
fails at once with a message saying what and where. The bundle digest (model and card) is
checked by the server, not here: the pin lives in the server's command line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict, Unpack

from modeldeploy.server.contract import MODEL_FILE

ATTEMPTS = 5
BACKOFF_SECONDS = 1.0
TIMEOUT_SECONDS = 30.0
CHUNK = 1 << 20
TAR_SUFFIXES = (".tar.gz", ".tgz")


class FetchError(Exception):
    """A bundle that cannot be fetched; the message is for the pod's log."""


def _is_tar(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES)


def local_path(uri: str) -> Path | None:
    """The local path of a file:// URI or a plain path; None for http(s)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise FetchError(f"{uri}: file:// URIs must be local (file:///path)")
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    raise FetchError(
        f"{uri}: unsupported scheme {parsed.scheme!r} (use http(s)://, file:// or a path)"
    )


class DownloadOptions(TypedDict, total=False):
    """The keyword arguments ``fetch`` passes on to ``download``."""

    attempts: int
    backoff: float
    timeout: float
    sleep: Callable[[float], None]


def download(
    url: str,
    target: Path,
    *,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
    timeout: float = TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Stream ``url`` into ``target``; retry connection errors and 5xx, not 4xx."""
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "modeldeploy-fetch"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, open(target, "wb") as out:
                shutil.copyfileobj(resp, out, CHUNK)
            return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500 and exc.code != 429:
                raise FetchError(f"{url}: {last}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last = str(getattr(exc, "reason", exc))
        if attempt < attempts:
            delay = backoff * 2 ** (attempt - 1)
            print(
                f"fetch: {url}: {last}; retrying in {delay:g}s ({attempt}/{attempts})",
                file=sys.stderr,
            )
            sleep(delay)
    raise FetchError(f"{url}: {last} (gave up after {attempts} attempts)")


def _checked_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Regular files and folders under the target only: no links, devices, absolute or
    ``..`` paths (Python's ``data`` filter where it exists does the same and more)."""
    members = []
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts:
            raise FetchError(f"refusing path {member.name!r} outside the bundle")
        if not (member.isfile() or member.isdir()):
            raise FetchError(f"refusing {member.name!r}: only files and folders are allowed")
        members.append(member)
    return members


def unpack(archive: Path, into: Path) -> None:
    """Extract a .tar.gz after checking every member (see ``_checked_members``)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _checked_members(tar)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, members=members, filter="data")
            else:  # Python < 3.11.4: the members were checked above
                tar.extractall(into, members=members)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(f"{archive.name}: not a readable .tar.gz bundle: {exc}") from None


def bundle_root(folder: Path) -> Path:
    """The folder holding the model file: the top, or its only subfolder."""
    if (folder / MODEL_FILE).is_file():
        return folder
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / MODEL_FILE).is_file():
        return entries[0]
    raise FetchError(
        f"the bundle has no {MODEL_FILE} (found: "
        f"{', '.join(sorted(p.name for p in entries)) or 'nothing'})"
    )


def fetch(uri: str, dest: Path, **download_options: Unpack[DownloadOptions]) -> Path:
    """Fetch the bundle at ``uri`` into ``dest`` atomically; returns ``dest``."""
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        staged = work / "bundle"
        source = local_path(uri)
        if source is None:
            name = urllib.parse.urlparse(uri).path
            if not _is_tar(name):
                raise FetchError(f"{uri}: an http(s) bundle must be a .tar.gz")
            archive = work / "bundle.tar.gz"
            download(uri, archive, **download_options)
            unpack(archive, staged)
        elif source.is_dir():
            shutil.copytree(source, staged, symlinks=False)
        elif source.is_file() and _is_tar(source.name):
            unpack(source, staged)
        elif source.exists():
            raise FetchError(f"{uri}: not a bundle (expected a folder or a .tar.gz)")
        else:
            raise FetchError(f"{uri}: no such file or folder")
        root = bundle_root(staged)
        old = work / "old"
        if dest.exists():
            os.replace(dest, old)
        os.replace(root, dest)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fetch`` to the ``modeldeploy`` parser."""
    parser = commands.add_parser(
        "fetch",
        help="fetch a model bundle (the init container of model server pods)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "uri",
        metavar="URI",
        help="http(s)://.../bundle.tar.gz, file:///path or /path (a bundle folder or .tar.gz)",
    )
    parser.add_argument("dest", metavar="DEST", type=Path, help="folder to create")
    parser.add_argument(
        "--attempts", type=int, default=ATTEMPTS, help=f"download attempts (default {ATTEMPTS})"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_SECONDS,
        help=f"seconds per network operation (default {TIMEOUT_SECONDS:g})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        dest = fetch(args.uri, args.dest, attempts=args.attempts, timeout=args.timeout)
    except FetchError as exc:
        print(f"fetch: {exc}", file=sys.stderr)
        return 1
    print(f"fetch: {args.uri} -> {dest}")
    return 0

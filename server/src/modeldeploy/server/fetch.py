"""``modeldeploy fetch URI DEST``: put a model bundle where the server will read it.

Runs in the init container of every model server pod. URI is http(s)://, s3://, models:/,
file:// or a plain path; it names a bundle folder or a ``.tar.gz`` of one, which is unpacked
(refusing links and paths that leave the folder).

  http(s)://HOST/PATH.tar.gz   an archive (standard library only)
  s3://BUCKET/KEY.tar.gz       an archive in S3 or any S3-compatible store
  s3://BUCKET/PREFIX/          a folder bundle: every object under PREFIX/
  models:/NAME/VERSION         a version in an MLflow Model Registry (--tracking-uri)
  models:/NAME@ALIAS           the version an alias points at, resolved first
  file:///PATH or /PATH        a folder or an archive on a mounted volume

DEST appears complete or not at all: the bundle is assembled beside it, its bundle digest
is checked against --sha256 (when given; the server checks it again before it loads), and
only then is it renamed into place. Network errors, 5xx answers and throttling are retried
a bounded number of times with backoff (1 s, 2 s, 4 s, ...); anything else (403, 404, a
wrong digest) fails at once with a message saying what and where.

S3: --s3-endpoint for an S3-compatible server (default AWS), --s3-region (default
us-east-1), --s3-path-style or --no-s3-path-style (default: path-style with an endpoint,
virtual-hosted on AWS). Credentials only from the environment, never from flags:
$MODELDEPLOY_S3_ACCESS_KEY_ID, $MODELDEPLOY_S3_SECRET_ACCESS_KEY and, optionally,
$MODELDEPLOY_S3_SESSION_TOKEN (pods fill them from a Secret); without them requests are
unsigned.

models:/: --tracking-uri http(s)://HOST[:PORT][/PATH], the MLflow tracking server; it must
serve its artifacts (--serve-artifacts): files are downloaded through it. Never unpinned:
without --sha256 the version's modeldeploy.sha256 tag (set by `modeldeploy register`) is
the pin; with neither, or if they differ, nothing is downloaded. Credentials only from the
environment, by MLflow's names: $MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD
(basic auth) or $MLFLOW_TRACKING_TOKEN (bearer).
"""

from __future__ import annotations

import argparse
import hmac
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict, Unpack

from modeldeploy.server.contract import MODEL_FILES
from modeldeploy.server.contract import sources as c
from modeldeploy.server.digest import folder_digest
from modeldeploy.server.sources import (
    ATTEMPTS,
    BACKOFF_SECONDS,
    TIMEOUT_SECONDS,
    FetchError,
    Retry,
    is_tar,
    source_for,
)
from modeldeploy.server.sources.mlflow import MLflowSettings, MLflowSource
from modeldeploy.server.sources.s3 import S3Settings, add_s3_arguments
from modeldeploy.server.sources.s3client import s3_flags

__all__ = ["FetchError", "fetch"]


class DownloadOptions(TypedDict, total=False):
    """How network sources retry (see ``sources.base.Retry``)."""

    attempts: int
    backoff: float
    timeout: float
    sleep: Callable[[float], None]


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

    def has_model(where: Path) -> bool:
        return any((where / name).is_file() for name in MODEL_FILES)

    if has_model(folder):
        return folder
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and has_model(entries[0]):
        return entries[0]
    raise FetchError(
        f"the bundle has no {' or '.join(MODEL_FILES)} (found: "
        f"{', '.join(sorted(p.name for p in entries)) or 'nothing'})"
    )


def check_digest(bundle: Path, pinned: str) -> None:
    """Refuse a staged bundle whose bundle digest is not ``pinned`` (nothing is kept)."""
    expected = pinned.strip().lower().removeprefix("sha256:")
    try:
        actual = folder_digest(bundle)
    except FileNotFoundError as exc:
        raise FetchError(f"the bundle has no {Path(exc.filename).name}") from None
    except ValueError as exc:  # both model files
        raise FetchError(str(exc)) from None
    if not hmac.compare_digest(actual, expected):
        raise FetchError(
            f"bundle sha256 (model and card) is {actual}, pinned {expected}: refusing it"
        )


def fetch(
    uri: str,
    dest: Path,
    *,
    sha256: str = "",
    s3: S3Settings | None = None,
    mlflow: MLflowSettings | None = None,
    **download_options: Unpack[DownloadOptions],
) -> Path:
    """Fetch the bundle at ``uri`` into ``dest`` atomically; returns ``dest``.

    With ``sha256``, a bundle with another digest is refused before anything is placed. A
    models:/ bundle is always checked: against ``sha256`` or else its version's digest tag.
    """
    source = source_for(uri, s3, mlflow)
    retry = Retry(**download_options)
    if isinstance(source, MLflowSource):
        sha256 = source.pin(sha256, retry)  # before any file is downloaded
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        staged = work / "bundle"
        got = source.stage(work, retry)
        if got.is_dir() and got.is_relative_to(work):
            os.replace(got, staged)  # downloaded objects: already ours
        elif got.is_dir():
            shutil.copytree(got, staged, symlinks=False)
        elif is_tar(got.name):
            unpack(got, staged)
        else:
            raise FetchError(f"{uri}: not a bundle (expected a folder or a .tar.gz)")
        root = bundle_root(staged)
        if sha256:
            try:
                check_digest(root, sha256)
            except FetchError as exc:
                raise FetchError(f"{uri}: {exc}") from None
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
        help="http(s)://.../bundle.tar.gz, s3://BUCKET/KEY.tar.gz, s3://BUCKET/PREFIX/, "
        "models:/NAME/VERSION, models:/NAME@ALIAS, file:///path or /path (a bundle folder "
        "or .tar.gz)",
    )
    parser.add_argument("dest", metavar="DEST", type=Path, help="folder to create")
    parser.add_argument(
        c.FLAG_FETCH_SHA256,
        dest="sha256",
        default="",
        metavar="HEX",
        help="the pinned bundle digest (`modeldeploy digest`): refuse any other bundle "
        "(models:/: default the version's digest tag)",
    )
    parser.add_argument(
        "--attempts", type=int, default=ATTEMPTS, help=f"download attempts (default {ATTEMPTS})"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_SECONDS,
        help=f"seconds per network operation (default {TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=BACKOFF_SECONDS,
        help=f"seconds before the first retry, doubled for each next one "
        f"(default {BACKOFF_SECONDS:g})",
    )
    add_s3_arguments(parser, "s3:// sources")
    registry = parser.add_argument_group("models:/ sources")
    registry.add_argument(
        c.FLAG_MLFLOW_TRACKING_URI,
        dest="tracking_uri",
        default="",
        metavar="URL",
        help="the MLflow tracking server, http(s)://HOST[:PORT][/PATH] (required for models:/)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        flags = s3_flags(args)
        # Credentials are read only for an s3:// URI; S3 flags on another are refused by it.
        s3 = S3Settings.from_env(*flags) if args.uri.startswith(c.S3_SCHEME) else S3Settings(*flags)
        if args.uri.startswith(c.MODELS_SCHEME):
            mlflow = MLflowSettings.from_env(args.tracking_uri)  # credentials: only here
        else:
            mlflow = MLflowSettings(args.tracking_uri)  # refused by the source if given
        dest = fetch(
            args.uri,
            args.dest,
            sha256=args.sha256,
            s3=s3,
            mlflow=mlflow,
            attempts=args.attempts,
            timeout=args.timeout,
            backoff=args.backoff,
        )
    except FetchError as exc:
        print(f"fetch: {exc}", file=sys.stderr)
        return 1
    print(f"fetch: {args.uri} -> {dest}")
    return 0

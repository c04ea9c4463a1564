"""file:// URIs and plain paths: a bundle folder or ``.tar.gz`` on a mounted volume."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.server.sources.base import FetchError, Retry, is_tar


def local_path(uri: str) -> Path:
    """The local path of a file:// URI or a plain path."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise FetchError(f"{uri}: file:// URIs must be local (file:///path)")
        return Path(urllib.parse.unquote(parsed.path))
    return Path(uri)


@dataclass(frozen=True)
class LocalSource:
    uri: str

    def stage(self, work: Path, retry: Retry) -> Path:
        source = local_path(self.uri)
        if source.is_dir() or (source.is_file() and is_tar(source.name)):
            return source
        if source.exists():
            raise FetchError(f"{self.uri}: not a bundle (expected a folder or a .tar.gz)")
        raise FetchError(f"{self.uri}: no such file or folder")

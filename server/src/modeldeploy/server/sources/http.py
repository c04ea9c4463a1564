"""http(s):// bundles: one ``.tar.gz``, downloaded with the standard library."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.server.sources.base import FetchError, Retry, Retryable, is_tar

CHUNK = 1 << 20


def download(url: str, target: Path, retry: Retry) -> None:
    """Stream ``url`` into ``target``; retry connection errors, 5xx and 429, not other 4xx."""

    def once() -> None:
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "modeldeploy-fetch"})
            with (
                urllib.request.urlopen(req, timeout=retry.timeout) as resp,
                open(target, "wb") as out,
            ):
                shutil.copyfileobj(resp, out, CHUNK)
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500 and exc.code != 429:
                raise FetchError(f"{url}: {last}") from None
            raise Retryable(last) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise Retryable(str(getattr(exc, "reason", exc))) from None

    retry.run(url, once)


@dataclass(frozen=True)
class HttpSource:
    uri: str

    def __post_init__(self) -> None:
        if not is_tar(urllib.parse.urlparse(self.uri).path):
            raise FetchError(f"{self.uri}: an http(s) bundle must be a .tar.gz")

    def stage(self, work: Path, retry: Retry) -> Path:
        archive = work / "bundle.tar.gz"
        download(self.uri, archive, retry)
        return archive

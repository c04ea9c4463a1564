"""What every bundle source shares: its error, the bounded retry and the ``Source`` protocol."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

ATTEMPTS = 5
BACKOFF_SECONDS = 1.0
TIMEOUT_SECONDS = 30.0
TAR_SUFFIXES = (".tar.gz", ".tgz")

T = TypeVar("T")


class FetchError(Exception):
    """A bundle that cannot be fetched; the message is for the pod's log (never a secret)."""


class Retryable(Exception):
    """A transient failure (connection, timeout, 5xx, throttling): worth another attempt."""


def is_tar(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES)


@dataclass(frozen=True)
class Retry:
    """A bounded number of attempts with exponential backoff (1 s, 2 s, 4 s, ...)."""

    attempts: int = ATTEMPTS
    backoff: float = BACKOFF_SECONDS
    timeout: float = TIMEOUT_SECONDS  # seconds per network operation
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def run(self, what: str, operation: Callable[[], T]) -> T:
        """``operation()``, again after each ``Retryable``; a ``FetchError`` when all fail."""
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                return operation()
            except Retryable as exc:
                last = str(exc)
            if attempt < self.attempts:
                delay = self.backoff * 2 ** (attempt - 1)
                print(
                    f"fetch: {what}: {last}; retrying in {delay:g}s ({attempt}/{self.attempts})",
                    file=sys.stderr,
                )
                self.sleep(delay)
        raise FetchError(f"{what}: {last} (gave up after {self.attempts} attempts)")


class Source(Protocol):
    """One bundle location. ``stage`` puts the bundle's bytes under ``work`` (a scratch folder
    on the destination's file system, removed afterwards) and returns the ``.tar.gz`` or the
    folder that holds it; a local source may return its own path instead. Placement, the
    digest check and unpacking are the caller's, the same for every source."""

    @property
    def uri(self) -> str: ...

    def stage(self, work: Path, retry: Retry) -> Path: ...

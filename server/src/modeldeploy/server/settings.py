"""The server's settings, one frozen value passed to ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modeldeploy.server.contract import DEFAULT_PORT
from modeldeploy.server.sources.s3client import S3Settings


@dataclass(frozen=True)
class LabelledSettings:
    """Where and how the server keeps what ``/feedback`` labelled (``modeldeploy.server.
    labelled``): ``location`` is ``s3://BUCKET/PREFIX`` or a folder, ``pod`` names the files.
    Files rotate at ``rows_per_file`` rows or ``max_age`` seconds; at most ``max_pending``
    rows wait in memory; files older than ``retention_days`` are deleted."""

    location: str
    pod: str
    s3: S3Settings = field(default_factory=S3Settings, repr=False)
    rows_per_file: int = 5000
    max_age: float = 60.0
    max_pending: int = 50_000
    retention_days: float = 7.0


@dataclass(frozen=True)
class Settings:
    """How one server process serves one bundle.

    ``max_batch_wait_ms`` bounds how long a batch may wait for more requests to arrive;
    ``drift=False`` turns off the per-batch drift bookkeeping (bin counts and the recent
    window), which exists to measure what monitoring costs. ``labelled`` None: no
    labelled-data store (nothing about a request is kept beyond what ``/feedback`` scores).
    """

    bundle: Path
    sha256: str
    role: str = "stable"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_batch_rows: int = 256
    max_batch_wait_ms: float = 2.0
    max_request_rows: int = 1024
    max_body_bytes: int = 4 * 1024 * 1024
    drift: bool = True
    drift_window: int = 5000
    drift_alpha: float = 0.05
    drift_min_rows: int = 50
    feedback_capacity: int = 100_000
    # Where /feedback for another replica's prediction is forwarded (``peers``); "" = nowhere.
    feedback_peers: str = ""
    labelled: LabelledSettings | None = None

"""What the end-to-end harness's own server processes share (versitygw, mlflow, the scale
exporter and operator): a bounded wait for the first answer and a stop that always ends."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path


def wait_answering(
    proc: subprocess.Popen[bytes],
    url: str,
    log_path: Path,
    what: str,
    timeout: float,
    interval: float = 0.2,
) -> None:
    """Until ``url`` answers 200; ``RuntimeError`` with the end of the log if ``proc`` exits
    first, or naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout:g} s")
        time.sleep(interval)


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 20.0) -> None:
    """SIGTERM, up to ``grace`` seconds for it to exit, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)

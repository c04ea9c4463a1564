"""Running commands and printing progress, shared by the build and the cluster lifecycle."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

Cmd = Sequence[str | os.PathLike[str]]


def say(message: str) -> None:
    """One progress line on stderr, so `env` output on stdout stays clean for `eval`."""
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def run(
    cmd: Cmd,
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, and raise with that output when it fails."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        input=input.decode() if input is not None else None,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise CommandError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc


def out(cmd: Cmd, **kwargs: object) -> str:
    """stdout of a command that must succeed."""
    return run(cmd, **kwargs).stdout  # type: ignore[arg-type]


class CommandError(RuntimeError):
    """A command failed; the message carries its tail of stderr, which is what one needs."""

    def __init__(self, cmd: Cmd, code: int, stdout: str, stderr: str) -> None:
        self.cmd = [str(c) for c in cmd]
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        super().__init__(f"{' '.join(self.cmd)} exited {code}:\n{tail}")


def run_logged(
    cmd: Cmd,
    log: Path,
    *,
    label: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    every: float = 30.0,
) -> float:
    """Run a long command with output to a log file, printing a heartbeat; returns seconds.

    Builds take minutes: a line every `every` seconds shows the build is alive without
    flooding the terminal, and the log keeps everything for when it fails.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every):
                with open(log, errors="replace") as fh:
                    lines = sum(1 for _ in fh)
                say(f"{label}: {time.monotonic() - start:.0f}s, {lines} log lines ({log})")

        ticker = threading.Thread(target=beat, daemon=True)
        ticker.start()
        code = proc.wait()
        stop.set()
    elapsed = time.monotonic() - start
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{label} failed after {elapsed:.0f}s (exit {code}); log {log}:\n{tail}")
    return elapsed


def write(path: Path, text: str, mode: int = 0o644) -> None:
    """The one writer for every rendered file (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One build/up/down at a time on this machine (several test runs may share a cluster)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another build/up/down to finish ({path})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield

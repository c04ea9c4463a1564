"""Daemons of the cluster: started inside the node's network namespace, tracked by pid files.

A pid file records the pid and the process' start time, so `down` never signals a process
that merely reused the number. nsenter with only --net execs the daemon (no fork), so the pid
we get is the daemon's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import config
from .config import Paths

NETNS_PATH = Path("/run/netns") / config.NETNS


@dataclass(frozen=True)
class Tracked:
    name: str
    pid: int
    start: str


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def alive(t: Tracked) -> bool:
    return _start_time(t.pid) == t.start


def in_node(argv: Sequence[str]) -> list[str]:
    """The command line that runs argv inside the node's network namespace.

    nsenter --net, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts
    the kubelet needs.
    """
    return ["nsenter", f"--net={NETNS_PATH}", "--", *argv]


def start(
    paths: Paths,
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str] | None = None,
) -> Tracked:
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.pids.mkdir(parents=True, exist_ok=True)
    with open(paths.logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            in_node([str(a) for a in argv]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=paths.state,
            env=dict(env) if env is not None else None,
        )
    start_time = None
    for _ in range(50):
        start_time = _start_time(proc.pid)
        if start_time is not None:
            break
        time.sleep(0.02)
    if start_time is None:
        raise RuntimeError(f"{name} exited at once; see {paths.logs / (name + '.log')}")
    tracked = Tracked(name, proc.pid, start_time)
    (paths.pids / f"{name}.json").write_text(json.dumps(tracked.__dict__))
    return tracked


def tracked(paths: Paths) -> dict[str, Tracked]:
    out: dict[str, Tracked] = {}
    for f in sorted(paths.pids.glob("*.json")) if paths.pids.exists() else []:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        out[data["name"]] = Tracked(**data)
    return out


def stop(paths: Paths, name: str, grace: float = 10.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; forget the pid file."""
    t = tracked(paths).get(name)
    if t is not None:
        kill_pid(t.pid, t.start, grace)
    (paths.pids / f"{name}.json").unlink(missing_ok=True)


def kill_pid(pid: int, start: str | None = None, grace: float = 10.0) -> None:
    start = start or _start_time(pid)
    if start is None or _start_time(pid) != start:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if _start_time(pid) != start:
                return
            time.sleep(0.05)


def _reap(pid: int) -> None:
    """Our own children (when `up` ran in this process) would linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def pids_with_arg(needle: str) -> list[int]:
    """Processes whose command line contains `needle` (a path of ours, e.g. our socket)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(d.name))
    return found

"""Fixtures for the server's tests: example bundles built once, real uvicorn processes.

``serve`` starts ``python -m modeldeploy serve`` on 127.0.0.1 with a free port, waits for
readiness, and stops the process (and checks it is gone) when the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.server.examples import build_example


@dataclass(frozen=True)
class Built:
    path: Path
    sha256: str


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """The example variants (and a second healthy retrain), built once per session."""
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for key, variant, seed in (("good", "good", 0), ("good2", "good", 1), ("drifted", "drifted", 0),
                               ("diverging", "diverging", 0)):
        card = build_example(root / key, f"1.0.{seed}-{key}", variant, seed=seed)
        out[key] = Built(root / key, card.sha256)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running ``modeldeploy serve`` process."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Scraped samples keyed by (name, sorted labels without model/version/role)."""
        text = httpx.get(self.url + "/metrics", timeout=10.0).text
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("model", "version", "role")))
                out[(sample.name, labels)] = sample.value
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(bundle: Path, sha: str | None, log_path: Path, *extra: str,
                 env: dict[str, str] | None = None, wait_ready: bool = True) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "modeldeploy", "serve", str(bundle), "--port", str(port), "--host", "127.0.0.1", *extra]
    if sha is not None:
        cmd += ["--sha256", sha]
    fh = open(log_path, "wb")
    process = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    fh.close()
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    if not wait_ready:
        return server
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/v2/health/ready", timeout=2.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server not ready within 60 s:\n{server.log()}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers for one test; all are stopped when it ends."""
    started: list[Server] = []

    def _serve(bundle: Built, *extra: str, sha: str | None = "pinned", **kwargs: object) -> Server:
        server = start_server(bundle.path, bundle.sha256 if sha == "pinned" else sha,
                              tmp_path / f"server-{len(started)}.log", *extra, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()
        assert server.process.poll() is not None


@pytest.fixture(scope="module")
def good_server(bundles: dict[str, Built], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One stable server of the good model shared by a module's tests (they use deltas)."""
    server = start_server(bundles["good"].path, bundles["good"].sha256,
                          tmp_path_factory.mktemp("logs") / "good.log", "--max-batch-wait-ms", "5")
    yield server
    server.stop()

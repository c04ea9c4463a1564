"""A real ``modeldeploy serve`` process for tests: start on a free loopback port, wait, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import httpx
from prometheus_client.parser import text_string_to_metric_families


def wait_healthy(
    proc: subprocess.Popen[bytes],
    url: str,
    seconds: float,
    what: str,
    log: Callable[[], str],
    pause: float = 0.1,
) -> None:
    """Poll ``url`` until it answers 200 (bounded in ``seconds``): a RuntimeError with the
    end of the process's ``log`` if it exits first, or if it never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(pause)
    raise RuntimeError(f"{what} did not answer {url} within {seconds:g} s: {log()[-3000:]}")


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
                labels = tuple(
                    sorted(
                        (k, v)
                        for k, v in sample.labels.items()
                        if k not in ("model", "version", "role")
                    )
                )
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


class StartOptions(TypedDict, total=False):
    """The keyword arguments of ``start_server``, for fixtures that pass them on."""

    env: dict[str, str] | None
    wait_ready: bool
    port: int | None


def start_server(
    bundle: Path,
    sha: str | None,
    log_path: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    port: int | None = None,
) -> Server:
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "modeldeploy",
        "serve",
        str(bundle),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        *extra,
    ]
    if sha is not None:
        cmd += ["--sha256", sha]
    with open(log_path, "wb") as fh:
        process = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
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


async def _exchange(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def burst(
    url: str, bodies: list[bytes], connections: int, path: str = "/predict"
) -> list[tuple[int, bytes]]:
    """Send ``bodies`` over ``connections`` keep-alive sockets in waves: in each wave every
    connection writes its request before any answer is read, so the server really sees them
    arrive together (an HTTP client library in one Python process is too slow for that)."""
    host, port = url.removeprefix("http://").split(":")
    streams = [await asyncio.open_connection(host, int(port)) for _ in range(connections)]
    answers: list[tuple[int, bytes]] = []
    try:
        for start in range(0, len(bodies), connections):
            wave = bodies[start : start + connections]
            for (_, writer), body in zip(streams, wave, strict=False):
                writer.write(
                    b"POST "
                    + path.encode()
                    + b" HTTP/1.1\r\nHost: "
                    + host.encode()
                    + b"\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
            for (reader, _), _body in zip(streams, wave, strict=False):
                answers.append(await asyncio.wait_for(_exchange(reader), 30))
    finally:
        for _, writer in streams:
            writer.close()
    return answers

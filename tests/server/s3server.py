"""A real S3-compatible server for tests (versitygw, built by the harness) and a loopback
proxy in front of it that can answer 503 or cut a response short on demand."""

from __future__ import annotations

import http.client
import http.server
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server_process import free_port, wait_healthy

from e2e.s3store import s3_client
from modeldeploy.server.contract import sources as c


@dataclass
class S3Server:
    """A versitygw process on 127.0.0.1 with a root user of random credentials."""

    process: subprocess.Popen[bytes]
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    log_path: Path

    def env(self, **override: str) -> dict[str, str]:
        """The environment a pod's init container would get from the credentials Secret."""
        env = {c.ENV_S3_ACCESS_KEY_ID: self.access_key, c.ENV_S3_SECRET_ACCESS_KEY: self.secret_key}
        env.update(override)
        return env

    def client(self) -> Any:
        """A botocore client as the root user (to create buckets and upload bundles)."""
        return s3_client(self.endpoint, self.access_key, self.secret_key)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_versitygw(binary: str, root: Path, port: int | None = None) -> S3Server:
    """Start versitygw's posix backend on a temporary folder; wait until it answers."""
    data, meta = root / "data", root / "meta"
    data.mkdir(parents=True, exist_ok=True)
    meta.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    access, secret = "modeldeploy-test", secrets.token_hex(20)
    log_path = root / "versitygw.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ROOT_ACCESS_KEY": access,
        "ROOT_SECRET_KEY": secret,
    }
    cmd = [binary, "--port", f"127.0.0.1:{port}", "--health", "/health", "--quiet"]
    cmd += ["posix", "--sidecar", str(meta), str(data)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(proc, f"http://127.0.0.1:{port}", access, secret, log_path)
    try:
        wait_healthy(
            proc,
            f"{server.endpoint}/health",
            30,
            "versitygw",
            lambda: log_path.read_text(errors="replace"),
        )
    except RuntimeError:
        server.stop()
        raise
    return server


class FaultProxy:
    """Forwards every request to ``upstream`` unchanged (the Host header too, so SigV4 still
    verifies), except that the next ``fail`` requests get a 503 SlowDown and the next ``cut``
    responses stop after half their body. Counts the requests it saw."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.fail = 0
        self.cut = 0
        self.requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                proxy.requests.append(self.path)
                if proxy.fail > 0:
                    proxy.fail -= 1
                    body = (
                        b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=10)
                conn.request("GET", self.path, headers=dict(self.headers.items()))
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if proxy.cut > 0 and resp.status == 200 and len(body) > 1:
                    proxy.cut -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def versitygw_with_bucket(root: Path, bucket: str) -> Iterator[S3Server]:
    """The harness's versitygw on loopback with one bucket, stopped afterwards (a module
    fixture's body)."""
    from e2e.cluster.fixtures import harness_tool

    server = start_versitygw(harness_tool("versitygw"), root)
    try:
        server.client().create_bucket(Bucket=bucket)
        yield server
    finally:
        server.stop()

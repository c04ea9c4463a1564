"""A real ``mlflow server`` for tests: sqlite registry in a temporary folder, one worker, its
artifacts proxied (``--serve-artifacts``) to a versitygw bucket on loopback."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from s3server import S3Server
from server_process import free_port, wait_healthy

BUCKET = "mlflow"
START_SECONDS = 90  # it takes 12-15 s on an idle machine; the machine is shared


@dataclass
class MLflowServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_mlflow(s3: S3Server, root: Path) -> MLflowServer:
    """Start ``mlflow server`` with its artifacts in ``s3://mlflow/artifacts``; wait for it."""
    s3.client().create_bucket(Bucket=BUCKET)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "AWS_", "MODELDEPLOY_"))
    }
    env.update(
        MLFLOW_S3_ENDPOINT_URL=s3.endpoint,
        AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
    )
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    cmd += ["--artifacts-destination", f"s3://{BUCKET}/artifacts", "--serve-artifacts"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log_path = root / "mlflow.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = MLflowServer(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_healthy(proc, f"{server.url}/health", START_SECONDS, "mlflow server", server.log, 0.2)
    except RuntimeError:
        server.stop()
        raise
    return server


class Stub:
    """A loopback HTTP server that answers every GET with ``status`` (or, with ``upstream``,
    forwards it there) and records each request's path and Authorization header; stopped,
    its port refuses connections."""

    def __init__(self, status: int = 401, upstream: str = "") -> None:
        self.seen: list[tuple[str, str]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                stub.seen.append((self.path, self.headers.get("Authorization", "")))
                code, body = status, b'{"error_code": "PERMISSION_DENIED", "message": "no"}'
                if upstream:
                    try:
                        with urllib.request.urlopen(upstream + self.path, timeout=10) as resp:
                            code, body = resp.status, resp.read()
                    except urllib.error.HTTPError as exc:
                        code, body = exc.code, exc.read()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def downloads(self) -> list[str]:
        return [path for path, _ in self.seen if "mlflow-artifacts" in path]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""The serving benchmark's machinery: ports, server processes, MLServer's venv and wrk.

Kept apart from ``serve_bench`` so that the benchmark reads as what it measures.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
MLSERVER_VENV = Path.home() / ".cache" / "modeldeploy" / "bench-mlserver-venv"
MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"]
CONNECTIONS = (1, 16, 64)
ROW = {
    "request_rate": 412.5,
    "error_pct": 0.8,
    "p99_latency_ms": 190.2,
    "deploy_hour": 14,
    "is_weekend": 0,
}
MODEL_NAME = "incident-predictor"


@dataclass
class Result:
    server: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Server:
    """One server under test: its command, readiness URL, target URL and request."""

    name: str
    cmd: list[str]
    ready: str
    url: str
    script: Path
    body: bytes
    env: dict[str, str] = field(default_factory=dict)


def mlserver_folder(folder: Path, model_file: Path, port: int) -> Path:
    """An MLServer model repository serving ``model_file`` with the scikit-learn runtime and
    adaptive batching (up to 64 rows, 2 ms), one process."""
    import shutil

    (folder / MODEL_NAME).mkdir(parents=True)
    shutil.copy(model_file, folder / MODEL_NAME / model_file.name)
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
                "debug": False,
                "host": "127.0.0.1",
            }
        )
    )
    (folder / MODEL_NAME / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "max_batch_size": 64,
                "max_batch_time": 0.002,
                "parameters": {"uri": f"./{model_file.name}", "version": "1"},
            }
        )
    )
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def ensure_mlserver() -> Path:
    """MLServer in its own virtual environment (its pins clash with ours)."""
    python = MLSERVER_VENV / "bin" / "python"
    mlserver = MLSERVER_VENV / "bin" / "mlserver"
    if not mlserver.exists():
        print(f"installing MLServer into {MLSERVER_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *MLSERVER_PACKAGES], check=True)
    return mlserver


def ensure_pandas() -> None:
    try:
        import pandas  # noqa: F401
    except ImportError:
        print("installing the bench extra (pandas) for the textbook server ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-e", f"{ROOT}[bench]"], check=True
        )


def lua_script(path: Path, body: bytes) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    return path


_LAT = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    url: str, script: Path, connections: int, duration: float
) -> tuple[float, float, float, int]:
    """One wrk run: (requests/s, p50 ms, p99 ms, non-2xx or socket errors)."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: _ms(v, u) for p, v, u in _LAT.findall(out)}
    errors = 0
    for pattern in (
        r"Non-2xx or 3xx responses:\s+(\d+)",
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    ):
        m = re.search(pattern, out)
        if m:
            errors += sum(int(g) for g in m.groups())
    return rps, lat["50"], lat["99"], errors


def measure(name: str, url: str, script: Path, duration: float, warmup: float) -> list[Result]:
    results = []
    for connections in CONNECTIONS:
        run_wrk(url, script, connections, warmup)
        rps, p50, p99, errors = run_wrk(url, script, connections, duration)
        results.append(Result(name, connections, rps, p50, p99, errors))
        print(
            f"  {name:14s} c={connections:<3d} {rps:9.0f} req/s  p50 {p50:7.2f} ms  p99 "
            f"{p99:7.2f} ms" + (f"  ERRORS {errors}" if errors else ""),
            flush=True,
        )
    return results


def uvicorn_cmd(python: str, app: str, port: int | str) -> list[str]:
    return [
        python,
        "-m",
        "uvicorn",
        "--app-dir",
        str(BENCH),
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--no-proxy-headers",  # as `modeldeploy serve` runs: no X-Forwarded-* pass
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]

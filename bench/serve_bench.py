"""Serving benchmark: our server against the textbook one, MLServer and a constant endpoint.

One run, one machine, one model (the example GradientBoosting with 150 trees), one load
generator (wrk with a Lua script that POSTs one row per request), 1, 16 and 64
connections. Servers, all one process on 127.0.0.1:

  ours           modeldeploy serve (drift bookkeeping on; and with --no-drift, measured in
                 alternating runs, for the cost of monitoring)
  textbook       FastAPI + pydantic + a pandas DataFrame + predict_proba per request
  mlserver       MLServer 1.7.1, scikit-learn runtime, adaptive batching, its own venv
  constant       FastAPI endpoint that reads the body and returns a constant

Prints requests/s and p50/p99 per server and connection count, each ratio to ours, the
monitoring cost, and how close ours comes to its floor (the constant endpoint's cost plus
the model's own cost per row at the batch size reached). Figures, not a test: only
ratios from one run count.

    .venv/bin/python bench/serve_bench.py [--duration 8] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from benchlib import (
    CONNECTIONS,
    MODEL_NAME,
    ROW,
    Result,
    ensure_mlserver,
    ensure_pandas,
    free_port,
    lua_script,
    measure,
    run_wrk,
    stop,
    uvicorn_cmd,
    wait_http,
)


def mean_batch_rows(url: str) -> float:
    """Rows per model call, from our own metrics."""
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    total = sum(
        float(v) for v in re.findall(r"^modeldeploy_batch_rows_sum\{[^}]*\} (\S+)$", text, re.M)
    )
    count = sum(
        float(v) for v in re.findall(r"^modeldeploy_batch_rows_count\{[^}]*\} (\S+)$", text, re.M)
    )
    return total / count if count else 1.0


def model_seconds_per_call(bundle: Path, sha: str, rows: int, repeat: int = 300) -> float:
    """What one predict_proba call costs in-process at a given batch size."""
    import numpy as np

    from modeldeploy.server.bundle import load_bundle
    from modeldeploy.server.examples import generate_traffic

    model = load_bundle(bundle, sha).model
    x = np.ascontiguousarray(generate_traffic(max(rows, 1), seed=3))
    import sklearn

    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        model.predict_proba(x)
        start = time.perf_counter()
        for _ in range(repeat):
            model.predict_proba(x)
    return (time.perf_counter() - start) / repeat


def bookkeeping_seconds_per_batch(
    bundle: Path, rows: int, repeat: int = 5000
) -> tuple[float, float]:
    """In-process cost of one batch's bookkeeping (drift on, drift off): the noise-free view."""
    import numpy as np

    from modeldeploy.server.bundle import read_card
    from modeldeploy.server.examples import generate_traffic
    from modeldeploy.server.monitor import Monitor

    card = read_card(bundle)
    x = generate_traffic(max(rows, 1), seed=4)
    scores = np.full(len(x), 0.3)
    classes = np.zeros(len(x), dtype=np.intp)
    out = []
    for drift in (True, False):
        monitor = Monitor(card, "stable", drift=drift)
        start = time.perf_counter()
        for _ in range(repeat):
            monitor.observe_batch(x, scores, classes)
        out.append((time.perf_counter() - start) / repeat)
    return out[0], out[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=8.0,
        help="seconds measured per server and connection count",
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of load before each measurement"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating on/off runs for the monitoring cost"
    )
    parser.add_argument(
        "--skip-mlserver", action="store_true", help="leave MLServer out (no venv install)"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed (Debian package wrk; scripts/setup.sh installs it)",
            file=sys.stderr,
        )
        return 2
    ensure_pandas()
    mlserver = None if args.skip_mlserver else ensure_mlserver()

    from modeldeploy.server.bundle import bundle_sha256
    from modeldeploy.server.contract import MODEL_FILE
    from modeldeploy.server.examples import build_example

    python = sys.executable
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="modeldeploy-bench-") as tmp_name:
        tmp = Path(tmp_name)
        build_example(tmp / "bundle", "1", "good", seed=0)
        bundle, sha = tmp / "bundle", bundle_sha256(tmp / "bundle")
        ours_body = json.dumps({"instances": [ROW]}).encode()
        v2_body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [1, 5],
                        "datatype": "FP64",
                        "data": list(ROW.values()),
                    }
                ],
                "outputs": [{"name": "predict_proba"}],
            }
        ).encode()
        predict_lua = lua_script(tmp / "predict.lua", ours_body)
        v2_lua = lua_script(tmp / "v2.lua", v2_body)
        print(
            f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
            f"Python {platform.python_version()}; wrk -t1, {args.duration:g} s per point after "
            f"{args.warmup:g} s warm-up",
            flush=True,
        )

        servers: list[tuple[str, list[str], str, str, Path, bytes, dict[str, str]]] = []

        def ours_cmd(port: int, *extra: str) -> list[str]:
            return [
                python,
                "-m",
                "modeldeploy",
                "serve",
                str(bundle),
                "--sha256",
                sha,
                "--port",
                str(port),
                "--log-level",
                "warning",
                *extra,
            ]

        port = free_port()
        servers.append(
            (
                "ours",
                ours_cmd(port),
                f"http://127.0.0.1:{port}/v2/health/ready",
                f"http://127.0.0.1:{port}/predict",
                predict_lua,
                ours_body,
                {},
            )
        )
        port = free_port()
        servers.append(
            (
                "textbook",
                uvicorn_cmd(python, "textbook_server:app", port),
                f"http://127.0.0.1:{port}/health",
                f"http://127.0.0.1:{port}/predict",
                predict_lua,
                ours_body,
                {"MODEL_PATH": str(bundle / MODEL_FILE)},
            )
        )
        if mlserver is not None:
            port = free_port()
            folder = tmp / "mlserver"
            (folder / MODEL_NAME).mkdir(parents=True)
            shutil.copy(bundle / MODEL_FILE, folder / MODEL_NAME / MODEL_FILE)
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
                        "parameters": {"uri": f"./{MODEL_FILE}", "version": "1"},
                    }
                )
            )
            servers.append(
                (
                    "mlserver",
                    [str(mlserver), "start", str(folder)],
                    f"http://127.0.0.1:{port}/v2/health/ready",
                    f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer",
                    v2_lua,
                    v2_body,
                    {},
                )
            )
        port = free_port()
        servers.append(
            (
                "constant",
                uvicorn_cmd(python, "constant_server:app", port),
                f"http://127.0.0.1:{port}/health",
                f"http://127.0.0.1:{port}/predict",
                predict_lua,
                ours_body,
                {},
            )
        )

        batch_at_16 = 1.0
        for name, cmd, ready, url, script, body, extra_env in servers:
            with open(tmp / f"{name}.log", "wb") as log:
                process = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env={**env, **extra_env}, cwd=tmp
                )
            try:
                wait_http(ready, process)
                probe_request = urllib.request.Request(
                    url, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(probe_request, timeout=10) as probe:
                    assert probe.status == 200, f"{name}: probe answered {probe.status}"
                results += measure(name, url, script, args.duration, args.warmup)
                if name == "ours":
                    batch_at_16 = mean_batch_rows(url.rsplit("/", 1)[0])
            except Exception:
                print((tmp / f"{name}.log").read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
            finally:
                stop(process)

        monitoring = monitoring_cost(
            ours_cmd, predict_lua, tmp, env, args.duration / 2, args.rounds
        )
        rows = max(int(round(batch_at_16)), 1)
        report(
            results,
            batch_at_16,
            model_seconds_per_call(bundle, sha, rows),
            monitoring,
            bookkeeping_seconds_per_batch(bundle, rows),
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


def monitoring_cost(
    ours_cmd: Callable[..., list[str]],
    script: Path,
    tmp: Path,
    env: dict[str, str],
    duration: float,
    rounds: int,
) -> tuple[float, float]:
    """Median req/s at 16 connections with drift bookkeeping on and off.

    Both servers run side by side (idle while the other is measured) and the runs
    alternate, so a busy neighbour on a shared machine hits both alike.
    """
    import statistics

    runs: dict[str, list[float]] = {"on": [], "off": []}
    processes = {}
    try:
        for key, extra in (("on", ()), ("off", ("--no-drift",))):
            port = free_port()
            with open(tmp / f"monitoring-{key}.log", "wb") as log:
                processes[key] = (
                    subprocess.Popen(
                        ours_cmd(port, *extra), stdout=subprocess.DEVNULL, stderr=log, env=env
                    ),
                    port,
                )
        for process, port in processes.values():
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready", process)
            run_wrk(f"http://127.0.0.1:{port}/predict", script, 16, 2)
        for _ in range(rounds):
            for key, (_, port) in processes.items():
                rps, _, _, errors = run_wrk(
                    f"http://127.0.0.1:{port}/predict", script, 16, duration
                )
                assert errors == 0, f"monitoring {key}: {errors} errors"
                runs[key].append(rps)
    finally:
        for process, _ in processes.values():
            stop(process)
    print(f"  monitoring     c=16 on {runs['on']} off {runs['off']} req/s", flush=True)
    return statistics.median(runs["on"]), statistics.median(runs["off"])


def report(
    results: list[Result],
    batch_rows: float,
    model_call_s: float,
    monitoring: tuple[float, float],
    bookkeeping: tuple[float, float],
) -> None:
    by = {(r.server, r.connections): r for r in results}
    names = list(dict.fromkeys(r.server for r in results))
    print("\n| server | conns | req/s | p50 ms | p99 ms | ours / this (req/s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        for c in CONNECTIONS:
            r, ours = by[(name, c)], by[("ours", c)]
            ratio = ours.requests_per_s / r.requests_per_s if r.requests_per_s else float("nan")
            print(
                f"| {name} | {c} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                f"{ratio:.2f}x |"
            )
    ours = by[("ours", 16)]
    print("\nat 16 connections:")
    for name, goal in (("textbook", 8.0), ("mlserver", 4.0)):
        if (name, 16) in by:
            other = by[(name, 16)]
            ratio = ours.requests_per_s / other.requests_per_s
            print(
                f"  ours / {name}: {ratio:.1f}x req/s (goal >= {goal:g}x), p99 "
                f"{ours.p99_ms:.2f} ms vs {other.p99_ms:.2f} ms"
                f" ({'lower' if ours.p99_ms < other.p99_ms else 'NOT lower'})"
            )
    const = by[("constant", 16)]
    print(
        f"  ours / constant: {ours.requests_per_s / const.requests_per_s:.2f}x req/s (goal >= 0.4x)"
    )
    on, off = monitoring
    print(
        f"  monitoring cost (medians of alternating runs): drift bookkeeping on {on:,.0f} "
        f"req/s vs off {off:,.0f} req/s "
        f"({(1 - on / off) * 100:.1f}% of throughput)"
    )
    per_request = (bookkeeping[0] - bookkeeping[1]) / batch_rows
    print(
        f"  drift bookkeeping in process: {bookkeeping[0] * 1e6:.1f} us per batch of "
        f"{batch_rows:.0f} rows with it, "
        f"{bookkeeping[1] * 1e6:.1f} us without: {per_request * 1e6:.2f} us per request "
        f"({per_request * on * 100:.1f}% of a request's time at {on:,.0f} req/s)"
    )
    floor_s = 1.0 / const.requests_per_s + model_call_s / batch_rows
    print(
        f"  floor: constant endpoint {1e6 / const.requests_per_s:.0f} us + model "
        f"{model_call_s * 1e6:.0f} us per call "
        f"/ {batch_rows:.1f} rows per call = {floor_s * 1e6:.0f} us per request = "
        f"{1 / floor_s:,.0f} req/s; "
        f"ours reaches {ours.requests_per_s * floor_s * 100:.0f}% of it"
    )


if __name__ == "__main__":
    sys.exit(main())

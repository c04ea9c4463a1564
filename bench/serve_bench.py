"""Serving benchmark: our server against the textbook one, MLServer and two constant servers.

One run, one machine, one load generator (wrk with a Lua script that POSTs one row per
request), 1, 16 and 64 connections, two models:

  the example    GradientBoosting with 150 trees after a scaler, fitted on an array
  a DataFrame    a ColumnTransformer (OneHotEncoder on string columns, a scaler) before 150
  pipeline       boosted trees, bundled with ``bundle_model`` (see frame_bench.py)

Servers, all one process on 127.0.0.1:

  ours           modeldeploy serve (drift bookkeeping on; and with --no-drift, measured in
                 alternating runs, for the cost of monitoring)
  textbook       FastAPI + pydantic + a pandas DataFrame + predict_proba per request
  mlserver       MLServer 1.7.1, scikit-learn runtime, adaptive batching, its own venv (the
                 DataFrame pipeline through its pandas codec)
  constant       FastAPI endpoint that reads the body and returns a constant
  raw-asgi       a raw ASGI app under the same uvicorn that reads the body and answers a
                 constant: the ceiling of a Python server here (and, side by side, the
                 same app on our protocol, one write per response: raw_onewrite.py)

Prints requests/s and p50/p99 per server and connection count, each ratio to ours, the
monitoring cost, and how close ours comes to its floor (the raw ASGI app's cost plus the
model's own cost per row at the batch size reached). Figures, not a test: only ratios from
one run count.

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
from dataclasses import asdict
from pathlib import Path

from bench_report import report
from benchlib import (
    BENCH,
    MODEL_NAME,
    ROW,
    Result,
    Server,
    ensure_mlserver,
    ensure_pandas,
    free_port,
    lua_script,
    measure,
    mlserver_folder,
    run_wrk,
    stop,
    uvicorn_cmd,
    wait_http,
)
from frame_bench import frame_servers


def batch_rows_totals(url: str) -> tuple[float, float]:
    """(rows, model calls) so far, from our own metrics."""
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    total = sum(
        float(v) for v in re.findall(r"^modeldeploy_batch_rows_sum\{[^}]*\} (\S+)$", text, re.M)
    )
    count = sum(
        float(v) for v in re.findall(r"^modeldeploy_batch_rows_count\{[^}]*\} (\S+)$", text, re.M)
    )
    return total, count


def batch_rows_at_16(url: str, script: Path) -> float:
    """Rows per model call at 16 connections: our metrics around a 2 s run."""
    rows0, calls0 = batch_rows_totals(url)
    run_wrk(url + "/predict", script, 16, 2)
    rows1, calls1 = batch_rows_totals(url)
    return (rows1 - rows0) / (calls1 - calls0) if calls1 > calls0 else 1.0


def model_seconds_per_call(bundle: Path, sha: str, rows: int, repeat: int = 300) -> float:
    """What one model call costs in-process at a given batch size, made as the server makes
    it (the compiled call when the model's shape has one)."""
    import numpy as np
    import sklearn

    from modeldeploy.server.bundle import load_bundle
    from modeldeploy.server.compiled import compiled_proba
    from modeldeploy.server.examples import generate_traffic
    from modeldeploy.server.runtime import sample_rows

    loaded = load_bundle(bundle, sha)
    call = compiled_proba(loaded.model, sample_rows(loaded.card)) or loaded.model.predict_proba
    x = np.ascontiguousarray(generate_traffic(max(rows, 1), seed=3))
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        call(x)
        start = time.perf_counter()
        for _ in range(repeat):
            call(x)
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
    parser.add_argument(
        "--skip-frame", action="store_true", help="leave the DataFrame pipeline out"
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

        def ours_cmd(
            port: int | str, *extra: str, bundle: Path = bundle, sha: str = sha
        ) -> list[str]:
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

        def local(name: str, cmd: list[str], port: int, ready: str, **env: str) -> Server:
            url = f"http://127.0.0.1:{port}"
            return Server(name, cmd, url + ready, url + "/predict", predict_lua, ours_body, env)

        port = free_port()
        servers = [local("ours", ours_cmd(port), port, "/v2/health/ready")]
        port = free_port()
        servers.append(
            local(
                "textbook",
                uvicorn_cmd(python, "textbook_server:app", port),
                port,
                "/health",
                MODEL_PATH=str(bundle / MODEL_FILE),
            )
        )
        if mlserver is not None:
            port = free_port()
            folder = mlserver_folder(tmp / "mlserver", bundle / MODEL_FILE, port)
            servers.append(
                Server(
                    "mlserver",
                    [str(mlserver), "start", str(folder)],
                    f"http://127.0.0.1:{port}/v2/health/ready",
                    f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer",
                    v2_lua,
                    v2_body,
                )
            )
        for name, app in (("constant", "constant_server:app"), ("raw-asgi", "raw_server:app")):
            port = free_port()
            servers.append(local(name, uvicorn_cmd(python, app, port), port, "/health"))
        if not args.skip_frame:
            servers += frame_servers(tmp, python, ours_cmd, mlserver)[0]

        batch_at_16 = 1.0
        for server in servers:
            with open(tmp / f"{server.name}.log", "wb") as log:
                process = subprocess.Popen(
                    server.cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**env, **server.env},
                    cwd=tmp,
                )
            try:
                wait_http(server.ready, process)
                probe_request = urllib.request.Request(
                    server.url, data=server.body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(probe_request, timeout=10) as probe:
                    assert probe.status == 200, f"{server.name}: probe answered {probe.status}"
                    print(f"  {server.name} answers {probe.read()[:400]!r}", flush=True)
                results += measure(
                    server.name, server.url, server.script, args.duration, args.warmup
                )
                if server.name == "ours":
                    batch_at_16 = batch_rows_at_16(server.url.rsplit("/", 1)[0], server.script)
            except Exception:
                log_text = (tmp / f"{server.name}.log").read_text(errors="replace")
                print(log_text[-3000:], file=sys.stderr)
                raise
            finally:
                stop(process)

        medians = alternating(
            {
                "on": (ours_cmd("{port}"), "/v2/health/ready"),
                "off": (ours_cmd("{port}", "--no-drift"), "/v2/health/ready"),
                "raw": (uvicorn_cmd(python, "raw_server:app", "{port}"), "/health"),
                "raw-onewrite": ([python, str(BENCH / "raw_onewrite.py"), "{port}"], "/health"),
            },
            predict_lua,
            tmp,
            env,
            args.duration / 2,
            args.rounds,
        )
        monitoring = medians["on"], medians["off"]
        rows = max(int(round(batch_at_16)), 1)
        report(
            results,
            batch_at_16,
            model_seconds_per_call(bundle, sha, rows),
            monitoring,
            bookkeeping_seconds_per_batch(bundle, rows),
            medians["raw"],
            medians["raw-onewrite"],
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


def alternating(
    cmds: dict[str, tuple[list[str], str]],
    script: Path,
    tmp: Path,
    env: dict[str, str],
    duration: float,
    rounds: int,
) -> dict[str, float]:
    """Median req/s at 16 connections of servers run side by side, measured in turns.

    ``cmds`` maps a name to (command for a port given as ``{port}``, readiness path). All
    servers run at once (idle while another is measured) and the runs alternate, so a busy
    neighbour on a shared machine hits them alike.
    """
    import statistics

    runs: dict[str, list[float]] = {key: [] for key in cmds}
    processes = {}
    try:
        for key, (cmd, ready) in cmds.items():
            port = free_port()
            with open(tmp / f"alternating-{key}.log", "wb") as log:
                processes[key] = (
                    subprocess.Popen(
                        [a.replace("{port}", str(port)) for a in cmd],
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                        env=env,
                        cwd=tmp,
                    ),
                    port,
                    ready,
                )
        for process, port, ready in processes.values():
            wait_http(f"http://127.0.0.1:{port}{ready}", process)
            run_wrk(f"http://127.0.0.1:{port}/predict", script, 16, 2)
        for _ in range(rounds):
            for key, (_, port, _) in processes.items():
                rps, _, _, errors = run_wrk(
                    f"http://127.0.0.1:{port}/predict", script, 16, duration
                )
                assert errors == 0, f"{key}: {errors} errors"
                runs[key].append(rps)
    finally:
        for process, _, _ in processes.values():
            stop(process)
    print("  alternating c=16 " + "; ".join(f"{k} {v}" for k, v in runs.items()), flush=True)
    return {key: statistics.median(values) for key, values in runs.items()}


if __name__ == "__main__":
    sys.exit(main())

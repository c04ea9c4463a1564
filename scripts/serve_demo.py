"""Local serving demo: build example bundles, gate them, serve one, watch it see drift.

Everything runs on 127.0.0.1 in a temporary folder; the server is stopped at the end and
no process is left behind.

    .venv/bin/python scripts/serve_demo.py
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from modeldeploy.server import gate
from modeldeploy.server.examples import (
    as_records,
    build_example,
    example_eval_data,
    generate_traffic,
    write_csv,
)

WINDOW = 400


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def call(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        return {"status": err.code, **json.loads(err.read())}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric_values(base: str) -> dict[str, float]:
    """The demo's few interesting series, summed over their labels."""
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    wanted = (
        "modeldeploy_requests_total",
        "modeldeploy_predictions_total",
        "modeldeploy_prediction_sum_total",
        "modeldeploy_prediction_sum_squares_total",
        "modeldeploy_batch_rows_count",
        "modeldeploy_feedback_total",
    )
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        key = name
        if name in ("modeldeploy_requests_total", "modeldeploy_feedback_total"):
            outcome = name_labels.split('outcome="', 1)[1].split('"', 1)[0]
            key = f"{name}{{outcome={outcome}}}"
        if name in wanted:
            out[key] = out.get(key, 0.0) + float(value)
    return out


def print_drift(report: dict[str, Any]) -> None:
    print(
        f"window {report['window']['rows']} rows; Bonferroni alpha "
        f"{report.get('corrected_alpha', 0):.3g}; "
        f"verdict: {report['verdict']}"
    )
    print(f"  {'feature':16s} {'test':10s} {'statistic':>10s} {'p-value':>10s} {'PSI':>8s}  drift")
    for f in report["features"]:
        print(
            f"  {f['feature']:16s} {f['test']:10s} {f['statistic']:10.4f} {f['p_value']:10.2e} "
            f"{f['psi']:8.3f}  "
            f"{'YES' if f['drift'] else 'no'}"
        )
    p = report.get("predictions", {})
    if p:
        print(
            f"  mean P(incident): live {p['live_mean']:.3f} vs reference {p['reference_mean']:.3f}"
        )


def send(base: str, rows: list[dict[str, Any]], per_request: int = 20) -> list[dict[str, Any]]:
    answers = []
    for start in range(0, len(rows), per_request):
        answers.append(call(base + "/predict", {"instances": rows[start : start + per_request]}))
    return answers


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="modeldeploy-demo-") as tmp_name:
        tmp = Path(tmp_name)
        say("building example bundles (GradientBoosting, 150 trees, synthetic SRE telemetry)")
        cards = {}
        for key, variant, seed in (
            ("v1", "good", 0),
            ("v2", "good", 1),
            ("v2-diverging", "diverging", 1),
        ):
            cards[key] = build_example(tmp / key, key, variant, seed=seed)
            print(
                f"  {key:14s} {variant:10s} sha256 {cards[key].sha256[:16]}...  "
                f"accuracy {cards[key].metrics['accuracy']:.3f}  roc_auc "
                f"{cards[key].metrics['roc_auc']:.3f}"
            )

        say("promotion gate on held-out labelled data: v2 vs v1, then v2-diverging vs v1")
        x, y = example_eval_data(2000, seed=1000)
        data = write_csv(tmp / "eval.csv", x, y)
        for candidate in ("v2", "v2-diverging"):
            decision = gate.run(tmp / candidate, tmp / "v1", data, minimums={"roc_auc": 0.7})
            print(gate.render(decision))
            print()

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        say(f"serving v1 on {base} (pinned sha256, drift window {WINDOW} rows)")
        cmd = [
            sys.executable,
            "-m",
            "modeldeploy",
            "serve",
            str(tmp / "v1"),
            "--sha256",
            cards["v1"].sha256,
            "--port",
            str(port),
            "--drift-window",
            str(WINDOW),
        ]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if call(base + "/v2/health/ready").get("ready"):
                        break
                except (urllib.error.URLError, ConnectionError):
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print(server.stderr.read() if server.stderr else "", file=sys.stderr)
                    raise SystemExit("the server did not become ready")
                time.sleep(0.2)
            print("  ready:", call(base + "/v2/health/ready"))

            say("normal traffic: 400 rows in requests of 20")
            answers = send(base, as_records(generate_traffic(WINDOW, seed=7)))
            first = answers[0]
            for record, pred, proba in list(
                zip(
                    as_records(generate_traffic(WINDOW, seed=7)),
                    first["predictions"],
                    first["probabilities"],
                    strict=False,
                )
            )[:4]:
                print(f"  {record} -> incident={pred} P={proba[1]:.3f}")
            print(
                f"  (model {first['model_name']} {first['model_version']}, request id "
                f"{first['request_id']})"
            )
            print_drift(call(base + "/drift"))

            say("a bad request is refused with the field and the problem")
            print(
                " ",
                call(
                    base + "/predict",
                    {"instances": [{**as_records(generate_traffic(1))[0], "is_weekend": 3}]},
                ),
            )

            say("feedback: ground truth for the first request")
            truth = [int(v) for v in example_eval_data(20, seed=7)[1]]
            print(
                " ", call(base + "/feedback", {"request_id": first["request_id"], "labels": truth})
            )

            say("shifted traffic (busier, slower, more errors): 400 rows")
            send(base, as_records(generate_traffic(WINDOW, seed=8, shifted=True)))
            print_drift(call(base + "/drift"))

            say("metrics (what Prometheus scrapes from /metrics)")
            values = metric_values(base)
            for key, value in sorted(values.items()):
                print(f"  {key:55s} {value:12.3f}")
            n = values["modeldeploy_predictions_total"]
            mean = values["modeldeploy_prediction_sum_total"] / n
            var = max(values["modeldeploy_prediction_sum_squares_total"] / n - mean**2, 0.0)
            print(
                f"  mean P(incident) {mean:.3f}, standard error {(var / n) ** 0.5:.4f} over "
                f"{n:.0f} predictions"
            )
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        say(
            f"server stopped (exit status {server.returncode}: it shut down on SIGTERM); "
            "nothing left running"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

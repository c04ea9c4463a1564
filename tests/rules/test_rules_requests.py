"""ModelHighErrorRate and ModelHighLatency through promtool."""

from __future__ import annotations

from pathlib import Path

import promsim as ps

STEPS = 40
LABELS = {
    "namespace": "ml",
    "modeldeployment": "churn",
    "pod": "churn-green-a",
    "slot": "green",
    "model": "churn",
    "version": "2",
}
# Upper bounds of the latency histogram's buckets.
BUCKETS = ("0.05", "0.25", "1", "2.5", "+Inf")


def _requests(role: str, ok: float, server_error: float, client_error: float) -> list[ps.Series]:
    labels = {**LABELS, "role": role}
    return [
        ps.Series(
            "modeldeploy_requests_total",
            {**labels, "outcome": outcome},
            ps.cumulative([inc] * STEPS),
        )
        for outcome, inc in (
            ("ok", ok),
            ("server_error", server_error),
            ("client_error", client_error),
        )
    ]


def _latency(role: str, per_bucket: list[float]) -> list[ps.Series]:
    """A histogram with ``per_bucket`` observations per step landing in each bucket."""
    labels = {**LABELS, "role": role}
    out = []
    running = 0.0
    for le, inc in zip(BUCKETS, per_bucket, strict=True):
        running += inc
        out.append(
            ps.Series(
                "modeldeploy_request_duration_seconds_bucket",
                {**labels, "le": le},
                ps.cumulative([running] * STEPS),
            )
        )
    return out


def _alert(name: str, role: str, description: str, severity: str) -> dict[str, object]:
    return {
        "exp_labels": {
            "severity": severity,
            "namespace": "ml",
            "modeldeployment": "churn",
            "role": role,
            "version": "2",
        },
        "exp_annotations": {"summary": f"{name} ml/churn ({role})", "description": description},
    }


def test_error_rate_counts_server_errors_only(tmp_path: Path) -> None:
    # Candidate: 3 of 20 requests per step fail on the server (15%); the stable's client
    # errors (bad input, 50%) are the callers' and do not count.
    series = _requests("candidate", 17, 3, 0) + _requests("stable", 10, 0, 10)
    checks = [
        {"eval_time": "30s", "alertname": "ModelHighErrorRate", "exp_alerts": []},
        {
            "eval_time": "5m",
            "alertname": "ModelHighErrorRate",
            "exp_alerts": [
                _alert(
                    "Server errors of",
                    "candidate",
                    "15% of the requests in the last minute failed on the server (threshold 5%).",
                    "critical",
                )
            ],
        },
    ]
    exprs = [
        {
            "expr": "round(modeldeploy:request_server_errors:ratio_rate1m * 1000)",
            "eval_time": "5m",
            "exp_samples": [
                {
                    "labels": '{namespace="ml", modeldeployment="churn", '
                    'role="candidate", version="2"}',
                    "value": 150,
                },
                {
                    "labels": '{namespace="ml", modeldeployment="churn", '
                    'role="stable", version="2"}',
                    "value": 0,
                },
            ],
        }
    ]
    ps.run_promtool_tests(
        tmp_path, [ps.UnitTest("errors", series, alert_tests=checks, expr_tests=exprs)]
    )


def test_latency_alert_on_a_slow_p99(tmp_path: Path) -> None:
    # Candidate: 10 of 20 requests per step take 1 to 2.5 s, so the p99 is above 1 s;
    # the stable answers everything within 50 ms.
    series = (
        _requests("candidate", 20, 0, 0)
        + _latency("candidate", [5, 5, 0, 10, 0])
        + _requests("stable", 20, 0, 0)
        + _latency("stable", [20, 0, 0, 0, 0])
    )
    # Prometheus interpolates linearly inside the bucket: 1 + (2.5 - 1) * (0.99*20 - 10) / 10.
    p99 = 1 + 1.5 * (0.99 * 20 - 10) / 10
    checks = [
        {"eval_time": "60s", "alertname": "ModelHighLatency", "exp_alerts": []},
        {
            "eval_time": "5m",
            "alertname": "ModelHighLatency",
            "exp_alerts": [
                _alert(
                    "Slow answers from",
                    "candidate",
                    f"p99 latency {p99:.3f}s over the last minute exceeds 1s.",
                    "warning",
                )
            ],
        },
    ]
    ps.run_promtool_tests(tmp_path, [ps.UnitTest("latency", series, alert_tests=checks)])

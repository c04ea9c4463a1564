"""A regressor's live error from /feedback through promtool: the chart's one-minute MAE and RMSE
records, and the README's PromQL (``contract.promql``) over ten minutes.

The expected values are computed here from the same counter samples. Increments are exact
binary fractions, so the sums over pods are exact whatever their order.
"""

from __future__ import annotations

import math
from pathlib import Path

import promsim as ps

from modeldeploy.server.contract import promql

STEPS = 60  # samples at 0, 15, ..., 900 s
QUIET = range(20, 30)  # steps without any labelled row


def _pod(role: str, version: str, pod: str) -> dict[str, str]:
    return {
        "namespace": "ml",
        "modeldeployment": "house",
        "role": role,
        "pod": pod,
        "model": "house",
        "version": version,
    }


def _feedback(seed: int) -> tuple[list[float], list[float], list[float]]:
    """Per-step (rows, sum of absolute errors, sum of squared errors), cumulative."""
    rows, absolute, squared = [], [], []
    for step in range(STEPS):
        n = 0.0 if step in QUIET else float(2 + (step * seed) % 5)
        err = 0.25 * (1 + (step + seed) % 7)  # every row of the step has this error
        rows.append(n)
        absolute.append(n * err)
        squared.append(n * err * err)
    return ps.cumulative(rows), ps.cumulative(absolute), ps.cumulative(squared)


PODS = {
    ("candidate", "2"): [_pod("candidate", "2", "house-green-a")],
    ("stable", "1"): [_pod("stable", "1", "house-blue-a"), _pod("stable", "1", "house-blue-b")],
}
SAMPLES = {
    pod["pod"]: _feedback(seed)
    for seed, pod in enumerate((p for pods in PODS.values() for p in pods), start=3)
}


def _series() -> list[ps.Series]:
    out = []
    for pods in PODS.values():
        for pod in pods:
            rows, absolute, squared = SAMPLES[pod["pod"]]
            out += [
                ps.Series("modeldeploy_feedback_rows_total", pod, rows),
                ps.Series("modeldeploy_feedback_abs_error_sum_total", pod, absolute),
                ps.Series("modeldeploy_feedback_squared_error_sum_total", pod, squared),
            ]
    return out


def delta(samples: list[float], t: int, window: int) -> float:
    """``increase(x[window])`` at t: exact, as ``promsim.window_delta`` explains."""
    k = t // ps.STEP
    return samples[k] - samples[max(0, k - window // ps.STEP)]


def errors(role: str, version: str, t: int, window: int) -> tuple[float, float, float]:
    """(rows, MAE, RMSE) of a role's pods in the window ending at t."""
    rows = absolute = squared = 0.0
    for pod in PODS[(role, version)]:
        r, a, s = SAMPLES[pod["pod"]]
        rows += delta(r, t, window)
        absolute += delta(a, t, window)
        squared += delta(s, t, window)
    if rows == 0:
        return rows, math.nan, math.nan
    return rows, absolute / rows, math.sqrt(squared / rows)


def _samples(labels: str, t: int, window: int, which: int) -> list[dict[str, object]]:
    out = []
    for role, version in PODS:
        rows, *values = errors(role, version, t, window)
        if rows > 0:
            out.append(
                {
                    "labels": labels.format(role=role, version=version),
                    "value": ps.promql_round(values[which]),
                }
            )
    return out


def test_mae_and_rmse_recorded_and_in_the_readme(tmp_path: Path) -> None:
    test = ps.UnitTest("feedback", _series())
    recorded = '{{namespace="ml", modeldeployment="house", role="{role}", version="{version}"}}'
    adhoc = '{{model="house", role="{role}", version="{version}"}}'
    quiet_end = (QUIET[-1] + 1) * ps.STEP  # a one-minute window inside the quiet steps
    for t in (120, 300, quiet_end, 600, 900):
        for which, record in enumerate(
            ("modeldeploy:feedback_mae:1m", "modeldeploy:feedback_rmse:1m")
        ):
            test.expr_tests.append(
                {
                    "expr": f"round({record} * 1e6)",
                    "eval_time": f"{t}s",
                    "exp_samples": _samples(recorded, t, 60, which),
                }
            )
        for which, expr in enumerate((promql.feedback_mae(), promql.feedback_rmse())):
            test.expr_tests.append(
                {
                    "expr": f"round(({expr}) * 1e6)",
                    "eval_time": f"{t}s",
                    "exp_samples": _samples(adhoc, t, 600, which),
                }
            )
    # No labelled row in the minute: no error series rather than 0/0.
    assert errors("stable", "1", quiet_end, 60)[0] == 0
    assert not test.expr_tests[4 * 2]["exp_samples"]
    # Every other expression has both roles: 5 instants x 4 expressions x 2 roles, less those.
    assert sum(len(e["exp_samples"]) for e in test.expr_tests) == 5 * 4 * 2 - 2 * 2
    # Sums over the stable's two pods; candidate and stable differ.
    assert errors("stable", "1", 900, 600)[1] != errors("candidate", "2", 900, 600)[1]
    ps.run_promtool_tests(tmp_path, [test])

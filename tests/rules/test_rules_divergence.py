"""ModelPredictionDivergence: prediction counts, sums and sums of squares through promtool.

The expected z-score (candidate mean minus stable mean over the standard error of the
difference) is computed here from the same counter samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import promsim as ps

from modeldeploy.server.contract.rules import DEFAULT_THRESHOLDS

STEPS = 50
DIVERGE_AT = 300
HOLD = 30
MIN_SAMPLES = 30
# The default threshold, in standard errors of the difference.
Z = DEFAULT_THRESHOLDS.divergence_std_errors
EVAL_TIMES = list(range(ps.STEP, STEPS * ps.STEP + 1, ps.STEP))


@dataclass
class Predictions:
    """One pod's predictions: per step n answers with a given mean and variance."""

    labels: dict[str, str]
    n: list[float]
    total: list[float]
    squares: list[float]

    @classmethod
    def build(cls, labels: dict[str, str], *parts: tuple[int, float, float, float]) -> Predictions:
        """Parts of (steps, answers per step, mean, variance)."""
        n: list[float] = []
        total: list[float] = []
        squares: list[float] = []
        for steps, count, mean, var in parts:
            n += [count] * steps
            total += [count * mean] * steps
            squares += [count * (var + mean * mean)] * steps
        return cls(labels, ps.cumulative(n), ps.cumulative(total), ps.cumulative(squares))

    def series(self) -> list[ps.Series]:
        return [
            ps.Series("modeldeploy_predictions_total", self.labels, self.n),
            ps.Series("modeldeploy_prediction_sum_total", self.labels, self.total),
            ps.Series("modeldeploy_prediction_sum_squares_total", self.labels, self.squares),
        ]

    def window(self, t: int) -> tuple[float, float, float]:
        return (
            ps.window_delta(self.n, t),
            ps.window_delta(self.total, t),
            ps.window_delta(self.squares, t),
        )


def mean_and_stderr(p: Predictions, t: int) -> tuple[float, float, float]:
    """(n, mean, standard error of the mean) in the window ending at t, as the rules do."""
    n, total, squares = p.window(t)
    mean = total / n
    var = max(squares / n - mean**2, 0.0)
    return n, mean, math.sqrt(var / n)


def zscore(candidate: Predictions, stable: Predictions, t: int) -> float:
    _, mc, sc = mean_and_stderr(candidate, t)
    _, ms, ss = mean_and_stderr(stable, t)
    return (mc - ms) / math.sqrt(sc**2 + ss**2)


def fires(candidate: Predictions, stable: Predictions, t: int) -> bool:
    return (
        abs(zscore(candidate, stable, t)) > Z
        and candidate.window(t)[0] >= MIN_SAMPLES
        and stable.window(t)[0] >= MIN_SAMPLES
    )


def _labels(md: str, role: str, slot: str, version: str) -> dict[str, str]:
    return {
        "namespace": "ml",
        "modeldeployment": md,
        "role": role,
        "slot": slot,
        "pod": f"{md}-{slot}-a",
        "model": md,
        "version": version,
    }


def scenario() -> dict[str, tuple[Predictions, Predictions]]:
    """Per ModelDeployment (candidate, stable)."""
    stable_parts = (STEPS, 100.0, 0.5, 0.04)
    return {
        # Healthy for five minutes, then the candidate's mean moves from 0.5 to 0.65.
        "churn": (
            Predictions.build(
                _labels("churn", "candidate", "green", "2"),
                (DIVERGE_AT // ps.STEP, 20.0, 0.5, 0.04),
                (STEPS - DIVERGE_AT // ps.STEP, 20.0, 0.65, 0.04),
            ),
            Predictions.build(_labels("churn", "stable", "blue", "1"), stable_parts),
        ),
        # Two identical answers per step: a zero variance makes the z-score large, but eight
        # answers a minute are too few to judge.
        "fraud": (
            Predictions.build(_labels("fraud", "candidate", "blue", "7"), (STEPS, 2.0, 0.6, 0.0)),
            Predictions.build(_labels("fraud", "stable", "green", "6"), stable_parts),
        ),
        # Plenty of answers, a mean 0.004 away: well within the threshold.
        "spam": (
            Predictions.build(
                _labels("spam", "candidate", "green", "3"), (STEPS, 20.0, 0.504, 0.04)
            ),
            Predictions.build(_labels("spam", "stable", "blue", "2"), stable_parts),
        ),
    }


def _all_series(s: dict[str, tuple[Predictions, Predictions]]) -> list[ps.Series]:
    return [x for c, st in s.values() for x in c.series() + st.series()]


def test_zscore_recorded_as_computed(tmp_path: Path) -> None:
    s = scenario()
    test = ps.UnitTest("zscore", _all_series(s))
    for t in (120, DIVERGE_AT, DIVERGE_AT + 30, 700):
        test.expr_tests.append(
            {
                "expr": "round(modeldeploy:prediction_divergence_zscore:1m * 1e6)",
                "eval_time": f"{t}s",
                "exp_samples": [
                    {
                        "labels": f'{{namespace="ml", modeldeployment="{md}", '
                        f'role="candidate", version="{c.labels["version"]}"}}',
                        "value": ps.promql_round(zscore(c, st, t)),
                    }
                    for md, (c, st) in s.items()
                ],
            }
        )
    ps.run_promtool_tests(tmp_path, [test])


def test_divergence_fires_for_a_diverging_candidate_only(tmp_path: Path) -> None:
    s = scenario()
    churn, fraud, spam = s["churn"], s["fraud"], s["spam"]
    # What the scenario claims.
    assert not fires(*churn, DIVERGE_AT)
    assert abs(zscore(*fraud, 700)) > Z and fraud[0].window(700)[0] < MIN_SAMPLES
    assert abs(zscore(*spam, 700)) < Z
    fire_at = ps.first_firing(EVAL_TIMES, lambda t: fires(*churn, t), HOLD)
    assert fire_at is not None and DIVERGE_AT < fire_at <= DIVERGE_AT + 60 + HOLD
    assert ps.first_firing(EVAL_TIMES, lambda t: fires(*fraud, t), HOLD) is None
    assert ps.first_firing(EVAL_TIMES, lambda t: fires(*spam, t), HOLD) is None

    def at(t: int, firing: bool) -> dict[str, object]:
        alerts = []
        if firing:
            z = zscore(*churn, t)
            alerts.append(
                {
                    "exp_labels": {
                        "severity": "warning",
                        "namespace": "ml",
                        "modeldeployment": "churn",
                        "role": "candidate",
                        "version": "2",
                        "test": "mean",
                    },
                    "exp_annotations": {
                        "summary": "Predictions of the candidate of ml/churn diverge from the "
                        "stable's",
                        "description": f"Mean difference of {z:.2f} standard errors "
                        f"(threshold {Z:g}).",
                        "zscore": f"{z:.4f}",
                        "test": "mean",
                    },
                }
            )
        return {
            "eval_time": f"{t}s",
            "alertname": "ModelPredictionDivergence",
            "exp_alerts": alerts,
        }

    checks = [at(t, t >= fire_at) for t in (120, DIVERGE_AT, fire_at - ps.STEP, fire_at, 700)]
    ps.run_promtool_tests(tmp_path, [ps.UnitTest("divergence", _all_series(s), alert_tests=checks)])


def test_alerts_are_per_version_and_two_stable_versions_pool(tmp_path: Path) -> None:
    """A rolled-back candidate v3 still diverging in its window beside the new candidate v5:
    only v3's alert fires, labelled with its version, never v5's. Right after a promotion two
    stable versions (v1 and v2) are in the window: the comparison still evaluates (pooled),
    instead of failing on a many-to-many match."""
    old = Predictions.build(_labels("churn", "candidate", "green", "3"), (STEPS, 20.0, 0.65, 0.04))
    new = Predictions.build(_labels("churn", "candidate", "blue", "5"), (STEPS, 20.0, 0.5, 0.04))
    stable_parts = (STEPS, 100.0, 0.5, 0.04)
    stables = [
        Predictions.build(
            {**_labels("churn", "stable", "blue", v), "pod": f"churn-{v}"}, stable_parts
        )
        for v in ("1", "2")
    ]
    series = [x for p in (old, new, *stables) for x in p.series()]
    t = 600
    z_old, z_new = zscore(old, stables[0], t), zscore(new, stables[0], t)
    assert abs(z_old) > Z > abs(z_new)
    test = ps.UnitTest(
        "versions",
        series,
        alert_tests=[
            {
                "eval_time": f"{t}s",
                "alertname": "ModelPredictionDivergence",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "namespace": "ml",
                            "modeldeployment": "churn",
                            "role": "candidate",
                            "version": "3",
                            "test": "mean",
                        },
                        "exp_annotations": {
                            "summary": "Predictions of the candidate of ml/churn diverge from "
                            "the stable's",
                            "description": f"Mean difference of {z_old:.2f} standard errors "
                            f"(threshold {Z:g}).",
                            "zscore": f"{z_old:.4f}",
                            "test": "mean",
                        },
                    }
                ],
            }
        ],
        expr_tests=[
            {
                "expr": "round(modeldeploy:prediction_divergence_zscore:1m * 1e6)",
                "eval_time": f"{t}s",
                "exp_samples": [
                    {
                        "labels": '{namespace="ml", modeldeployment="churn", role="candidate", '
                        f'version="{v}"}}',
                        "value": ps.promql_round(z),
                    }
                    for v, z in (("3", z_old), ("5", z_new))
                ],
            }
        ],
    )
    ps.run_promtool_tests(tmp_path, [test])

"""ModelFeatureDrift: bin counts of a stable then a drifted window, through promtool.

The expected PSI of every evaluation comes from the same counter samples through the server's
``stats.psi``, so the PromQL and the server's ``/drift`` report are checked to agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import promsim as ps

from modeldeploy.server import stats

DRIFT_AT = 300  # seconds: the first step with drifted traffic
STEPS = 50  # samples at 0, 15, ..., 750 s
THRESHOLD = 0.25
HOLD = 30  # the alert's `for:`
MIN_OBSERVATIONS = 100

TARGET = {"namespace": "ml", "modeldeployment": "churn", "job": "modeldeploy-models"}


def _pod(role: str, slot: str, pod: str, version: str) -> dict[str, str]:
    return {**TARGET, "role": role, "slot": slot, "pod": pod, "model": "churn", "version": version}


CANDIDATE_A = _pod("candidate", "green", "churn-green-a", "2")
CANDIDATE_B = _pod("candidate", "green", "churn-green-b", "2")
STABLE = _pod("stable", "blue", "churn-blue-a", "1")
# Every recorded series and alert keeps the server's version label.
VERSION_OF = {"candidate": "2", "stable": "1"}


class Feature:
    """A feature's reference fractions and, per pod, per-bin increments per step."""

    def __init__(self, name: str, reference: Sequence[float]) -> None:
        self.name = name
        self.reference = list(reference)
        self.pods: list[tuple[dict[str, str], list[list[float]]]] = []

    def add_pod(
        self,
        labels: dict[str, str],
        before: Sequence[float],
        after: Sequence[float],
        observed_bins: Sequence[int] | None = None,
    ) -> None:
        """Increments per bin: ``before`` until DRIFT_AT, ``after`` from then on."""
        cut = DRIFT_AT // ps.STEP
        per_bin = [[before[b]] * cut + [after[b]] * (STEPS - cut) for b in range(len(before))]
        bins = list(range(len(before))) if observed_bins is None else list(observed_bins)
        self.pods.append((labels, [per_bin[b] if b in bins else [] for b in range(len(before))]))

    def series(self) -> list[ps.Series]:
        out = []
        for labels, per_bin in self.pods:
            for b, incs in enumerate(per_bin):
                if incs:
                    out.append(
                        ps.Series(
                            "modeldeploy_feature_bin_total",
                            {**labels, "feature": self.name, "bin": str(b)},
                            ps.cumulative(incs),
                        )
                    )
                out.append(
                    ps.Series(
                        "modeldeploy_feature_reference_fraction",
                        {**labels, "feature": self.name, "bin": str(b)},
                        [self.reference[b]] * (STEPS + 1),
                    )
                )
        return out

    def window_counts(self, role: str, t: int) -> list[float]:
        """Live counts per bin of one role in the window ending at t (summed over pods)."""
        counts = [0.0] * len(self.reference)
        for labels, per_bin in self.pods:
            if labels["role"] != role:
                continue
            for b, incs in enumerate(per_bin):
                if incs:
                    counts[b] += ps.window_delta(ps.cumulative(incs), t)
        return counts

    def psi(self, role: str, t: int) -> float:
        return stats.psi(self.window_counts(role, t), self.reference)

    def fires(self, role: str, t: int) -> bool:
        return (
            self.psi(role, t) > THRESHOLD and sum(self.window_counts(role, t)) >= MIN_OBSERVATIONS
        )


def _features() -> list[Feature]:
    # x1: the candidate's two pods share the traffic 60/40; the distribution turns around
    # at DRIFT_AT. The stable sees the same drift but with too few observations to judge.
    x1 = Feature("x1", [0.1, 0.2, 0.3, 0.4])
    x1.add_pod(CANDIDATE_A, [6, 12, 18, 24], [24, 18, 12, 6])
    x1.add_pod(CANDIDATE_B, [4, 8, 12, 16], [16, 12, 8, 4])
    x1.add_pod(STABLE, [1, 2, 3, 4], [4, 3, 2, 1])
    # x2: after the drift two bins stay empty (the epsilon keeps the PSI finite).
    x2 = Feature("x2", [0.25, 0.25, 0.25, 0.25])
    x2.add_pod(CANDIDATE_A, [25, 25, 25, 25], [0, 0, 50, 50])
    # x3: one bin is never observed, so its series does not exist: it must count as 0.
    x3 = Feature("x3", [0.4, 0.4, 0.2])
    x3.add_pod(CANDIDATE_A, [50, 50, 0], [50, 50, 0], observed_bins=[0, 1])
    return [x1, x2, x3]


EVAL_TIMES = list(range(ps.STEP, STEPS * ps.STEP + 1, ps.STEP))


def _expected_psi_samples(features: list[Feature], t: int) -> list[dict[str, object]]:
    out = []
    for f in features:
        roles = sorted({labels["role"] for labels, _ in f.pods})
        for role in roles:
            labels = {
                "namespace": "ml",
                "modeldeployment": "churn",
                "role": role,
                "version": VERSION_OF[role],
                "feature": f.name,
            }
            inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
            out.append({"labels": f"{{{inner}}}", "value": ps.promql_round(f.psi(role, t))})
    return out


def test_psi_recorded_per_feature_matches_the_servers_psi(tmp_path: Path) -> None:
    features = _features()
    times = [90, DRIFT_AT, DRIFT_AT + 15, DRIFT_AT + 30, DRIFT_AT + 45, DRIFT_AT + 60, 700]
    test = ps.UnitTest("psi", [s for f in features for s in f.series()])
    for t in times:
        test.expr_tests.append(
            {
                "expr": "round(modeldeploy:feature_psi:1m * 1e6)",
                "eval_time": f"{t}s",
                "exp_samples": _expected_psi_samples(features, t),
            }
        )
    ps.run_promtool_tests(tmp_path, [test])
    # The scenario is what it claims: nothing before the drift, a full drift a minute later.
    x1, x2, x3 = features
    assert x1.psi("candidate", DRIFT_AT) == 0.0
    assert x1.psi("candidate", DRIFT_AT + 60) > 0.9
    assert x2.psi("candidate", DRIFT_AT + 60) > 4
    assert x3.psi("candidate", 700) > 1


def test_drift_alert_fires_with_the_psi_and_not_before(tmp_path: Path) -> None:
    features = _features()
    x1, x2, _ = features
    fire_x1 = ps.first_firing(EVAL_TIMES, lambda t: x1.fires("candidate", t), HOLD)
    fire_x2 = ps.first_firing(EVAL_TIMES, lambda t: x2.fires("candidate", t), HOLD)
    assert fire_x1 is not None and fire_x2 is not None
    # PSI rises as drifted steps enter the window; it crosses 0.25 only with 3 of 4 drifted.
    assert x1.psi("candidate", DRIFT_AT + 30) < THRESHOLD < x1.psi("candidate", DRIFT_AT + 45)
    assert fire_x1 == DRIFT_AT + 45 + HOLD
    # The stable's drift is as large but has 40 observations a minute: never fires.
    assert x1.psi("stable", 700) > THRESHOLD
    assert ps.first_firing(EVAL_TIMES, lambda t: x1.fires("stable", t), HOLD) is None

    def alert(feature: Feature, t: int) -> dict[str, object]:
        value = feature.psi("candidate", t)
        return {
            "exp_labels": {
                "severity": "warning",
                "namespace": "ml",
                "modeldeployment": "churn",
                "role": "candidate",
                "version": VERSION_OF["candidate"],
                "feature": feature.name,
            },
            "exp_annotations": {
                "summary": f"Input drift on feature {feature.name} of ml/churn (candidate)",
                "description": f"PSI {value:.4f} over the last minute exceeds 0.25.",
                "psi": f"{value:.4f}",
            },
        }

    def at(t: int, firing: list[Feature]) -> dict[str, object]:
        return {
            "eval_time": f"{t}s",
            "alertname": "ModelFeatureDrift",
            "exp_alerts": [alert(f, t) for f in firing],
        }

    fire_at = {
        f.name: ps.first_firing(EVAL_TIMES, lambda t, f=f: f.fires("candidate", t), HOLD)
        for f in features
    }
    first = min(t for t in fire_at.values() if t is not None)

    def firing(t: int) -> list[Feature]:
        return [f for f in features if fire_at[f.name] is not None and t >= fire_at[f.name]]

    checks = [at(first - ps.STEP, [])]
    for t in sorted({DRIFT_AT, *[v for v in fire_at.values() if v], fire_x1 - ps.STEP, 700}):
        checks.append(at(t, firing(t)))
    test = ps.UnitTest("drift", [s for f in features for s in f.series()], alert_tests=checks)
    ps.run_promtool_tests(tmp_path, [test])


def test_no_drift_alert_without_drift(tmp_path: Path) -> None:
    x1 = Feature("x1", [0.1, 0.2, 0.3, 0.4])
    x1.add_pod(CANDIDATE_A, [10, 20, 30, 40], [10, 20, 30, 40])
    checks = [
        {"eval_time": f"{t}s", "alertname": "ModelFeatureDrift", "exp_alerts": []}
        for t in (120, 400, 700)
    ]
    ps.run_promtool_tests(tmp_path, [ps.UnitTest("steady", x1.series(), alert_tests=checks)])
    assert max(x1.psi("candidate", t) for t in EVAL_TIMES) == 0.0

"""The class test of ModelPredictionDivergence through promtool: predicted-class counts of the
candidate against the stable's (``contract.classes``).

The expected chi-square and degrees of freedom come from scipy's ``chi2_contingency`` on the
same counter samples (the 2xK table of the classes seen in the window), the z-score from the
Wilson-Hilferty transform of them. String classes, classes on one side only, a class no side
predicted, two stable versions pooled, two candidate versions judged apart, a binary classifier
(left to the mean test) and a regressor (no class series: the mean test only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import promsim as ps
from scipy import stats

from modeldeploy.server.contract import promql
from modeldeploy.server.contract.rules import DEFAULT_THRESHOLDS, MIN_PREDICTIONS

STEPS = 50
DIVERGE_AT = 300
HOLD = 30
Z = DEFAULT_THRESHOLDS.divergence_std_errors
EVAL_TIMES = list(range(ps.STEP, STEPS * ps.STEP + 1, ps.STEP))
ROUND = "round({} * 1e6)"


@dataclass
class Pod:
    """One model server pod: per-class counters (none for a regressor) and the prediction
    count, sum and sum of squares."""

    md: str
    role: str
    version: str
    classes: dict[str, list[float]] = field(default_factory=dict)
    n: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    squares: list[float] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        md: str,
        role: str,
        version: str,
        *parts: tuple[int, dict[str, float], float, float],
        regression: bool = False,
    ) -> Pod:
        """Parts of (steps, predictions per class per step, mean, variance); a regressor's
        parts hold one key, whose count is its predictions per step."""
        names = sorted({k for _, counts, _, _ in parts for k in counts})
        per_class: dict[str, list[float]] = {k: [] for k in names}
        n: list[float] = []
        total: list[float] = []
        squares: list[float] = []
        for steps, counts, mean, var in parts:
            rows = sum(counts.values())
            for k in names:
                per_class[k] += [counts.get(k, 0.0)] * steps
            n += [rows] * steps
            total += [rows * mean] * steps
            squares += [rows * (var + mean * mean)] * steps
        classes = {} if regression else {k: ps.cumulative(v) for k, v in per_class.items()}
        return cls(
            md,
            role,
            version,
            classes,
            ps.cumulative(n),
            ps.cumulative(total),
            ps.cumulative(squares),
        )

    @property
    def labels(self) -> dict[str, str]:
        pod = f"{self.md}-{self.role}-{self.version}"
        return {
            "namespace": "ml",
            "modeldeployment": self.md,
            "role": self.role,
            "pod": pod,
            "model": self.md,
            "version": self.version,
        }

    def series(self) -> list[ps.Series]:
        out = [
            ps.Series("modeldeploy_predictions_total", self.labels, self.n),
            ps.Series("modeldeploy_prediction_sum_total", self.labels, self.total),
            ps.Series("modeldeploy_prediction_sum_squares_total", self.labels, self.squares),
        ]
        for k, samples in self.classes.items():
            out.append(
                ps.Series(
                    "modeldeploy_prediction_class_total", {**self.labels, "class": k}, samples
                )
            )
        return out


def class_counts(pods: list[Pod], t: int, window: int = ps.WINDOW) -> dict[str, float]:
    """Per class, ``increase(x[window])`` at t summed over pods (exact: see ``promsim``)."""
    k, out = t // ps.STEP, dict[str, float]()
    for p in pods:
        for cls, samples in p.classes.items():
            delta = samples[k] - samples[max(0, k - window // ps.STEP)]
            out[cls] = out.get(cls, 0.0) + delta
    return out


def chi_square(
    candidate: list[Pod] | Pod, stables: list[Pod], t: int, window: int = ps.WINDOW
) -> tuple[float, int]:
    """scipy's Pearson chi-square of the 2xK table of the classes seen (either side)."""
    cands = candidate if isinstance(candidate, list) else [candidate]
    c, s = class_counts(cands, t, window), class_counts(stables, t, window)
    seen = [k for k in sorted(set(c) | set(s)) if c.get(k, 0) + s.get(k, 0) > 0]
    table = np.array([[c.get(k, 0.0) for k in seen], [s.get(k, 0.0) for k in seen]])
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), int(result.dof)


def wilson_hilferty(chi2: float, df: int) -> float:
    return ((chi2 / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))


def class_z(candidate: Pod, stables: list[Pod], t: int) -> float | None:
    """The recorded class z-score, or None where the class test does not apply (a binary
    candidate whose table has two classes seen)."""
    chi2, df = chi_square(candidate, stables, t)
    if df < 2 and len(candidate.classes) <= 2:
        return None
    return wilson_hilferty(chi2, df)


def mean_z(candidate: Pod, stables: list[Pod], t: int) -> float:
    def moments(pods: list[Pod]) -> tuple[float, float, float]:
        n = sum(ps.window_delta(p.n, t) for p in pods)
        total = sum(ps.window_delta(p.total, t) for p in pods)
        squares = sum(ps.window_delta(p.squares, t) for p in pods)
        mean = total / n
        return n, mean, max(squares / n - mean**2, 0.0) / n

    (_, mc, vc), (_, ms, vs) = moments([candidate]), moments(stables)
    return (mc - ms) / math.sqrt(vc + vs)


def enough(candidate: Pod, stables: list[Pod], t: int) -> bool:
    return (
        ps.window_delta(candidate.n, t) >= MIN_PREDICTIONS
        and sum(ps.window_delta(p.n, t) for p in stables) >= MIN_PREDICTIONS
    )


CUT = DIVERGE_AT // ps.STEP
IRIS = {"Iris setosa": 30.0, "versicolor": 30.0, "virginica": 40.0}


def scenario() -> dict[str, tuple[list[Pod], list[Pod]]]:
    """Per ModelDeployment (candidates, stables). Every mean and variance is the stable's, so
    the mean test never fires but for the regressor."""
    return {
        # Multiclass with string labels: the candidate's class shares move at DIVERGE_AT.
        "iris": (
            [
                Pod.build(
                    "iris",
                    "candidate",
                    "2",
                    (CUT, {k: v / 5 for k, v in IRIS.items()}, 0.6, 0.05),
                    (STEPS - CUT, {"Iris setosa": 14, "versicolor": 1, "virginica": 5}, 0.6, 0.05),
                )
            ],
            [Pod.build("iris", "stable", "1", (STEPS, IRIS, 0.6, 0.05))],
        ),
        # Classes on one side only: "new class" the stable never has, "retired" the candidate
        # v3 does not have (no series), "never" that nobody predicts. Two stable versions are
        # pooled; a rolled-back v3 and the new v4 are judged apart.
        "tags": (
            [
                Pod.build(
                    "tags",
                    "candidate",
                    "3",
                    (STEPS, {"a": 10, "b": 5, "new class": 5, "never": 0}, 0.5, 0.04),
                ),
                Pod.build(
                    "tags",
                    "candidate",
                    "4",
                    (STEPS, {"a": 8, "b": 8, "retired": 2, "never": 0}, 0.5, 0.04),
                ),
            ],
            [
                Pod.build(
                    "tags",
                    "stable",
                    "1",
                    (STEPS, {"a": 20, "b": 20, "retired": 10, "never": 0}, 0.5, 0.04),
                ),
                Pod.build(
                    "tags",
                    "stable",
                    "2",
                    (STEPS, {"a": 20, "b": 25, "retired": 5, "never": 0}, 0.5, 0.04),
                ),
            ],
        ),
        # Binary, class shares far apart, same mean: the class test leaves it to the mean test.
        "spam": (
            [Pod.build("spam", "candidate", "5", (STEPS, {"ham": 10, "spam": 10}, 0.3, 0.04))],
            [Pod.build("spam", "stable", "4", (STEPS, {"ham": 80, "spam": 20}, 0.3, 0.04))],
        ),
        # A regressor: no class series; its mean moves at DIVERGE_AT.
        "house": (
            [
                Pod.build(
                    "house",
                    "candidate",
                    "8",
                    (CUT, {"rows": 20}, 3.0, 1.0),
                    (STEPS - CUT, {"rows": 20}, 4.0, 1.0),
                    regression=True,
                )
            ],
            [Pod.build("house", "stable", "7", (STEPS, {"rows": 100}, 3.0, 1.0), regression=True)],
        ),
        # Eight predictions a minute with other class shares: too few to judge.
        "fraud": (
            [Pod.build("fraud", "candidate", "2", (STEPS, {"x": 2, "y": 0, "z": 0}, 0.5, 0.04))],
            [Pod.build("fraud", "stable", "1", (STEPS, {"x": 10, "y": 45, "z": 45}, 0.5, 0.04))],
        ),
    }


def _series(s: dict[str, tuple[list[Pod], list[Pod]]]) -> list[ps.Series]:
    return [x for cands, stables in s.values() for p in cands + stables for x in p.series()]


def _key(p: Pod) -> str:
    return f'{{namespace="ml", modeldeployment="{p.md}", role="candidate", version="{p.version}"}}'


def test_class_chi_square_df_and_z_are_scipys(tmp_path: Path) -> None:
    s = scenario()
    test = ps.UnitTest("classes", _series(s))
    for t in (120, DIVERGE_AT + 60, 700):
        chi2, df, z = [], [], []
        for md, (cands, stables) in s.items():
            for c in cands if md != "house" else []:
                x, k = chi_square(c, stables, t)
                chi2.append({"labels": _key(c), "value": ps.promql_round(x)})
                df.append({"labels": _key(c), "value": ps.promql_round(k)})
                zc = class_z(c, stables, t)
                if zc is not None:
                    z.append({"labels": _key(c), "value": ps.promql_round(zc)})
        for record, samples in (
            (ROUND.format("modeldeploy:prediction_class_chi2:1m"), chi2),
            (ROUND.format("modeldeploy:prediction_class_df:1m"), df),
            (ROUND.format("modeldeploy:prediction_class_divergence_zscore:1m"), z),
        ):
            test.expr_tests.append({"expr": record, "eval_time": f"{t}s", "exp_samples": samples})
    # What the scenario claims: v3 has four classes seen (one each side only), v4 three.
    assert chi_square(s["tags"][0][0], s["tags"][1], 700)[1] == 3
    assert chi_square(s["tags"][0][1], s["tags"][1], 700)[1] == 2
    assert {d["labels"] for d in test.expr_tests[-1]["exp_samples"]} == {
        _key(p) for md in ("iris", "tags", "fraud") for p in s[md][0]
    }
    ps.run_promtool_tests(tmp_path, [test])


def test_readme_class_chi_square_is_scipys(tmp_path: Path) -> None:
    """The README's ad-hoc PromQL, per model over five minutes (candidate versions pooled)."""
    s = scenario()
    test = ps.UnitTest("adhoc", _series(s))
    for t in (120, 600):
        chi2, df = [], []
        for md, (cands, stables) in s.items():
            if md != "house":
                x, k = chi_square(cands, stables, t, 300)
                chi2.append({"labels": f'{{model="{md}"}}', "value": ps.promql_round(x)})
                df.append({"labels": f'{{model="{md}"}}', "value": float(k)})
        for expr, samples in (
            (ROUND.format(f"({promql.class_chi_square()})"), chi2),
            (promql.class_degrees_of_freedom(), df),
        ):
            test.expr_tests.append({"expr": expr, "eval_time": f"{t}s", "exp_samples": samples})
    # Four classes seen (a, b, new class, retired; "never" is not): three degrees of freedom.
    assert chi_square(s["tags"][0], s["tags"][1], 600, 300)[1] == 3
    ps.run_promtool_tests(tmp_path, [test])


def _alert(p: Pod, test: str, z: float) -> dict[str, object]:
    description = (
        f"Predicted-class counts differ by {z:.2f} standard errors, the Wilson-Hilferty z of "
        f"their chi-square (threshold {Z:g})."
        if test == "classes"
        else f"Mean difference of {z:.2f} standard errors (threshold {Z:g})."
    )
    return {
        "exp_labels": {
            "severity": "warning",
            "namespace": "ml",
            "modeldeployment": p.md,
            "role": "candidate",
            "version": p.version,
            "test": test,
        },
        "exp_annotations": {
            "summary": f"Predictions of the candidate of ml/{p.md} diverge from the stable's",
            "description": description,
            "zscore": f"{z:.4f}",
            "test": test,
        },
    }


def test_divergence_fires_on_the_class_test_or_the_mean_test(tmp_path: Path) -> None:
    s = scenario()
    (iris,), iris_stable = s["iris"]
    (v3, v4), tags_stable = s["tags"]
    (spam,), spam_stable = s["spam"]
    (house,), house_stable = s["house"]
    (fraud,), fraud_stable = s["fraud"]

    def fires(c: Pod, stables: list[Pod], t: int) -> bool:
        z = class_z(c, stables, t)
        return z is not None and z > Z and enough(c, stables, t)

    # What the scenario claims.
    iris_at = ps.first_firing(EVAL_TIMES, lambda t: fires(iris, iris_stable, t), HOLD)
    assert iris_at is not None and DIVERGE_AT < iris_at <= DIVERGE_AT + 60 + HOLD
    assert not fires(iris, iris_stable, DIVERGE_AT)
    house_at = ps.first_firing(
        EVAL_TIMES,
        lambda t: abs(mean_z(house, house_stable, t)) > Z and enough(house, house_stable, t),
        HOLD,
    )
    assert house_at is not None and DIVERGE_AT < house_at <= DIVERGE_AT + 60 + HOLD
    v3_at = ps.first_firing(EVAL_TIMES, lambda t: fires(v3, tags_stable, t), HOLD)
    assert v3_at is not None and v3_at < 120
    assert ps.first_firing(EVAL_TIMES, lambda t: fires(v4, tags_stable, t), HOLD) is None
    assert class_z(spam, spam_stable, 700) is None and chi_square(spam, spam_stable, 700)[0] > 30
    fraud_z = class_z(fraud, fraud_stable, 700)
    assert fraud_z is not None and fraud_z > Z and not enough(fraud, fraud_stable, 700)
    for cands, stables in s.values():
        for c in cands:
            assert c.md == "house" or mean_z(c, stables, 700) == 0

    def at(t: int) -> dict[str, object]:
        alerts = []
        if t >= iris_at:
            alerts.append(_alert(iris, "classes", class_z(iris, iris_stable, t) or 0))
        if t >= v3_at:
            alerts.append(_alert(v3, "classes", class_z(v3, tags_stable, t) or 0))
        if t >= house_at:
            alerts.append(_alert(house, "mean", mean_z(house, house_stable, t)))
        return {
            "eval_time": f"{t}s",
            "alertname": "ModelPredictionDivergence",
            "exp_alerts": alerts,
        }

    times = sorted(
        {v3_at - ps.STEP, v3_at, DIVERGE_AT, iris_at - ps.STEP, iris_at, house_at - ps.STEP}
        | {house_at, 700}
    )
    ps.run_promtool_tests(
        tmp_path, [ps.UnitTest("divergence", _series(s), alert_tests=[at(t) for t in times])]
    )

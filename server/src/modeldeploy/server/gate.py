"""The promotion gate: does a candidate bundle earn its way to production?

Run before a rollout starts (the rollout then watches the live side). On one labelled data
set the candidate must: reach the minimum metrics asked for, predict something other than
a constant, honour the directional expectations declared in its card, and be no worse than
the bundle serving now. ``run`` returns every check with its value and threshold so the
table says why; ``promote`` is true only when all pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.server import stats
from modeldeploy.server.arrays import FloatArray, ValueArray
from modeldeploy.server.bundle import Bundle, bundle_sha256, load_bundle, positive_scores
from modeldeploy.server.card import CLASSIFICATION, ModelCard
from modeldeploy.server.frame import Encoder

# Metric name -> True when higher is better.
HIGHER_IS_BETTER = {
    "accuracy": True,
    "roc_auc": True,
    "log_loss": False,
    "brier": False,
    "mae": False,
    "rmse": False,
    "r2": True,
    "f1_macro": True,
}
# Shares of rows each class must at least get for predictions to count as non-degenerate.
MIN_CLASS_SHARE = 0.01
MIN_SCORE_STD = 1e-3


class GateError(ValueError):
    """The gate cannot run: bad arguments, incompatible bundles or unreadable data."""


@dataclass(frozen=True)
class Check:
    """One line of the gate's table."""

    name: str
    value: str
    threshold: str
    passed: bool | None  # None: shown for information, not a condition
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    candidate: str
    current: str
    rows: int
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def promote(self) -> bool:
        return all(c.passed is not False for c in self.checks)


def parse_minimums(items: Sequence[str]) -> dict[str, float]:
    """``["roc_auc=0.7", ...]`` to ``{"roc_auc": 0.7}``; only higher-is-better metrics."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise GateError(f"--min {item!r}: expected METRIC=VALUE")
        if name not in HIGHER_IS_BETTER:
            raise GateError(f"--min {name}: unknown metric (known: {', '.join(HIGHER_IS_BETTER)})")
        if not HIGHER_IS_BETTER[name]:
            raise GateError(f"--min {name}: lower is better for {name}, a minimum makes no sense")
        try:
            out[name] = float(value)
        except ValueError:
            raise GateError(f"--min {item!r}: {value!r} is not a number") from None
    return out


def read_labelled(path: Path, card: ModelCard) -> tuple[Any, ValueArray]:
    """The model's input (built as the server builds it) and the labels, from a CSV or
    Parquet file holding the card's feature columns and its target column."""
    from modeldeploy.server.bundling.schema import read_table

    return labelled_input(read_table(path), card, card.output.target, str(path))


def labelled_input(frame: Any, card: ModelCard, target: str, where: str) -> tuple[Any, ValueArray]:
    """The model's input and the labels from a DataFrame with the card's feature columns
    and a ``target`` column; ``where`` names the data in errors (a file, the store)."""
    from modeldeploy.server.bundling import coerce_labels

    missing = [n for n in (*card.feature_names, target) if n not in frame.columns]
    if missing:
        raise GateError(f"{where}: missing column {', '.join(map(repr, missing))}")
    if len(frame) == 0:
        raise GateError(f"{where}: no data rows")
    for spec in card.features:
        if frame[spec.name].isna().any():
            raise GateError(f"{where}: column {spec.name!r} has missing values")
    try:
        batch = Encoder(card.features, card.input_format).from_frame(frame)
    except (TypeError, ValueError) as exc:
        raise GateError(f"{where}: {exc}") from None
    for j, spec in enumerate(card.features):
        if spec.discrete and not spec.allow_unseen:
            unseen = np.flatnonzero(batch.codes[:, j] >= len(spec.categories))
            if unseen.size:
                r = int(unseen[0])
                raise GateError(
                    f"{where}: row {r + 2}, column {spec.name!r}: {frame[spec.name].iloc[r]!r} "
                    "is not a known category"
                )
        elif not spec.discrete and not np.isfinite(batch.codes[:, j]).all():
            raise GateError(f"{where}: column {spec.name!r} has values that are not finite")
    return batch.model_input, coerce_labels(frame[target].to_numpy(), card.output, where)


def evaluate(
    bundle: Bundle, x: Any, y: ValueArray
) -> tuple[dict[str, float], ValueArray, FloatArray]:
    """Metrics, predictions and exported scores of a bundle on labelled data."""
    from modeldeploy.server.bundling.evaluate import metrics

    card = bundle.card
    scores = positive_scores(bundle.model, x, card.output)
    predicted = np.asarray(bundle.model.predict(x))
    return metrics(bundle.model, x, y, card.output), predicted, scores


def _raised(x: Any, j: int, name: str, step: float, maximum: float | None) -> Any:
    """``x`` with feature ``j`` (``name``) raised by ``step``, capped at ``maximum``."""
    moved = x.copy()
    if hasattr(moved, "columns"):
        column = moved[name].astype(np.float64) + step
        moved[name] = column if maximum is None else np.minimum(column, maximum)
        return moved
    moved[:, j] += step
    if maximum is not None:
        moved[:, j] = np.minimum(moved[:, j], maximum)
    return moved


def directional_checks(bundle: Bundle, x: Any) -> list[Check]:
    """Raise each declared feature by one reference standard deviation; the output must follow.

    Tree ensembles are step functions, so a few rows may move the other way; the check
    passes when the mean moves the declared way and at most ``tolerance`` of rows go against.
    """
    card = bundle.card
    checks = []
    base = positive_scores(bundle.model, x, card.output)
    for rule in card.directional_checks:
        j = card.feature_names.index(rule.feature)
        spec = card.features[j]
        step = max(card.reference_for(rule.feature).std, 1e-6)
        moved = _raised(x, j, rule.feature, step, spec.maximum)
        delta = positive_scores(bundle.model, moved, card.output) - base
        sign = 1.0 if rule.direction == "increasing" else -1.0
        against = float(np.mean(sign * delta < -1e-9))
        mean_ok = sign * float(delta.mean()) > 0
        checks.append(
            Check(
                f"direction: {rule.feature} {rule.direction}",
                f"{against:.1%} of rows against, mean {float(delta.mean()):+.4f}",
                f"<= {rule.tolerance:.0%}, mean {'>' if sign > 0 else '<'} 0",
                against <= rule.tolerance and mean_ok,
                f"+{step:.3g} on {rule.feature}",
            )
        )
    return checks


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def decide(
    candidate: Bundle,
    current: Bundle,
    x: Any,
    y: ValueArray,
    minimums: dict[str, float],
    max_regression: float,
) -> Decision:
    """All checks of the gate for two loaded bundles on the same labelled data."""
    cand, curr = candidate.card, current.card
    if cand.feature_names != curr.feature_names:
        raise GateError(
            f"candidate features {list(cand.feature_names)} differ from current "
            f"{list(curr.feature_names)}"
        )
    if cand.output.kind != curr.output.kind:
        raise GateError("candidate and current predict different kinds of output")
    if list(cand.output.classes) != list(curr.output.classes):
        raise GateError(
            f"candidate classes {list(cand.output.classes)} differ from current "
            f"{list(curr.output.classes)}"
        )
    c_metrics, c_pred, c_scores = evaluate(candidate, x, y)
    k_metrics, _, k_scores = evaluate(current, x, y)
    checks: list[Check] = []
    for name, minimum in minimums.items():
        if name not in c_metrics:
            raise GateError(f"--min {name}: not a metric of a {cand.output.kind} model")
        value = c_metrics[name]
        checks.append(
            Check(
                f"minimum {name}",
                _fmt(value),
                f">= {minimum:g}",
                not math.isnan(value) and value >= minimum,
            )
        )
    if cand.output.kind == CLASSIFICATION:
        shares = {cls: float(np.mean(c_pred == cls)) for cls in cand.output.classes}
        lowest = min(shares.values())
        checks.append(
            Check(
                "non-degenerate: every class predicted",
                ", ".join(f"{k}: {v:.1%}" for k, v in shares.items()),
                f">= {MIN_CLASS_SHARE:.0%} each",
                lowest >= MIN_CLASS_SHARE,
            )
        )
    spread = float(np.std(c_scores))
    checks.append(
        Check(
            "non-degenerate: predictions vary",
            f"std {spread:.4f}",
            f"> {MIN_SCORE_STD:g}",
            spread > MIN_SCORE_STD,
        )
    )
    checks.extend(directional_checks(candidate, x))
    for name, value in c_metrics.items():
        current_value = k_metrics[name]
        if math.isnan(value) or math.isnan(current_value):
            checks.append(Check(f"vs current: {name}", _fmt(value), "current n/a", None))
            continue
        if HIGHER_IS_BETTER[name]:
            ok, bound = (
                value >= current_value - max_regression,
                f">= {current_value - max_regression:.4f}",
            )
        else:
            ok, bound = (
                value <= current_value + max_regression,
                f"<= {current_value + max_regression:.4f}",
            )
        checks.append(
            Check(
                f"vs current: {name}", _fmt(value), f"{bound} (current {_fmt(current_value)})", ok
            )
        )
    z = stats.divergence_z(stats.Moments.of(c_scores), stats.Moments.of(k_scores))
    checks.append(
        Check(
            "vs current: mean prediction shift",
            f"{float(np.mean(c_scores)) - float(np.mean(k_scores)):+.4f}",
            "information",
            None,
            f"{z:.1f} standard errors",
        )
    )
    return Decision(
        candidate=f"{cand.name} {cand.version}",
        current=f"{curr.name} {curr.version}",
        rows=len(x),
        checks=tuple(checks),
    )


def _load(path: Path, sha: str | None, trust_card: bool, which: str) -> Bundle:
    """Load a bundle by its pinned digest; without one only when told to trust it."""
    if sha:
        return load_bundle(path, sha)
    if not trust_card:
        raise GateError(
            f"no digest given for the {which} bundle {path}: unpickling runs code, so pass "
            f"--{which}-sha256 HEX (the digest `modeldeploy bundle` printed), or --trust-card"
        )
    return load_bundle(path, bundle_sha256(path))


def run(
    candidate: Path,
    current: Path,
    data: Path | None,
    minimums: dict[str, float] | None = None,
    max_regression: float = 0.01,
    candidate_sha256: str | None = None,
    current_sha256: str | None = None,
    trust_card: bool = False,
    frame: Any = None,
    target: str | None = None,
) -> Decision:
    """Load both bundles (verifying digests), read the data, and decide.

    The data is the file ``data`` (features and the card's target column) or, for data
    already read (the labelled-data store), ``frame`` with its labels in column ``target``.
    """
    cand = _load(candidate, candidate_sha256, trust_card, "candidate")
    curr = _load(current, current_sha256, trust_card, "current")
    if data is not None:
        x, y = read_labelled(data, cand.card)
    elif frame is not None:
        x, y = labelled_input(frame, cand.card, target or cand.card.output.target, "the data")
    else:
        raise GateError("no labelled data: give a file or a frame")
    return decide(cand, curr, x, y, minimums or {}, max_regression)


def render(decision: Decision) -> str:
    """The gate's table, then the verdict."""
    rows: list[tuple[str, ...]] = [("check", "value", "threshold", "result")]
    for check in decision.checks:
        result = "info" if check.passed is None else "PASS" if check.passed else "FAIL"
        value = f"{check.value} ({check.detail})" if check.detail else check.value
        rows.append((check.name, value, check.threshold, result))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"candidate {decision.candidate} vs current {decision.current} on {decision.rows} rows"
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    failed = [c.name for c in decision.checks if c.passed is False]
    lines.append(
        "verdict: PROMOTE"
        if decision.promote
        else f"verdict: REJECT ({len(failed)} failed: {'; '.join(failed)})"
    )
    return "\n".join(lines)


def as_dict(decision: Decision) -> dict[str, Any]:
    """The decision as data (for programs calling the gate)."""
    return {
        "candidate": decision.candidate,
        "current": decision.current,
        "rows": decision.rows,
        "promote": decision.promote,
        "checks": [
            {
                "name": c.name,
                "value": c.value,
                "threshold": c.threshold,
                "passed": c.passed,
                "detail": c.detail,
            }
            for c in decision.checks
        ],
    }

"""Live monitoring: request, prediction, drift and feedback bookkeeping.

State is plain numbers and numpy arrays updated once per batch (a few ``searchsorted`` and
one ``bincount``), read by a custom collector (``exposition.MonitorCollector``) only when
Prometheus scrapes. That keeps the per-request cost to a handful of integer increments, and
all of it happens on the event loop's thread, so no locks are needed.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import numpy as np

from modeldeploy.server import contract as c
from modeldeploy.server import stats
from modeldeploy.server.arrays import FloatArray, IndexArray
from modeldeploy.server.card import CLASSIFICATION, UNSEEN_BIN, ModelCard
from modeldeploy.server.changepoint import ConceptDrift

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
FEEDBACK_OUTCOMES = c.FEEDBACK_OUTCOMES
# Rows times edges up to which ``Monitor.bin_indices`` compares a batch with all edges at once.
_SMALL_BATCH_CELLS = 1 << 14


class Histogram:
    """A bucketed histogram of plain ints: one ``bisect`` and two additions per observation."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Buckets as Prometheus wants them: ``(le, count of values <= le)``, ending in +Inf."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append((_le(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)


def _le(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) and bound >= 1 else repr(bound)


class Monitor:
    """All live bookkeeping of one loaded model."""

    def __init__(self, card: ModelCard, role: str, drift: bool = True, window: int = 5000) -> None:
        self.card = card
        self.role = role
        self.drift_enabled = drift
        self.labels = (card.name, card.version, role)
        features = card.features
        # Rows reach the monitor encoded (``frame.Encoder``): a discrete column holds the
        # index of its category, ``len(categories)`` for an unseen value (the extra bin).
        self._categorical = [f.discrete for f in features]
        self._cuts: list[FloatArray] = []
        self.bin_labels: list[list[str]] = []
        self.reference_fractions: list[tuple[float, ...]] = []
        for spec in features:
            ref = card.reference_for(spec.name)
            if spec.discrete:
                cuts = np.arange(len(spec.categories) + 1, dtype=np.float64)
                self.bin_labels.append([category_label(v) for v in spec.categories] + [UNSEEN_BIN])
                self.reference_fractions.append((*ref.fractions, 0.0))
            else:
                cuts = np.asarray(ref.edges, dtype=np.float64)
                self.bin_labels.append([str(i) for i in range(len(ref.edges) + 1)])
                self.reference_fractions.append(ref.fractions)
            self._cuts.append(cuts)
        # For small batches, all columns' bins in one comparison (see ``bin_indices``): each
        # column's edges in a row of one matrix padded with +inf; a discrete column's edges
        # are 1..k, so a code c in 0..k counts c of them, its own bin.
        widest = max((len(cuts) for cuts in self._cuts), default=0)
        self._edges = np.full((len(features), widest), np.inf)
        for j, cuts in enumerate(self._cuts):
            row = cuts[1:] if self._categorical[j] else cuts
            self._edges[j, : len(row)] = row
        sizes = [len(b) for b in self.bin_labels]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self._total_bins = int(sum(sizes))
        self.bin_counts = np.zeros(self._total_bins, dtype=np.int64)
        self.window_rows = np.zeros((max(window, 1), len(features)), dtype=np.float64)
        self.window_scores = np.zeros(max(window, 1), dtype=np.float64)
        self._window_pos = 0
        self.window_filled = 0

        self.classification = card.output.kind == CLASSIFICATION
        self.classes = tuple(card.output.classes)
        self.requests = dict.fromkeys(c.OUTCOMES, 0)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.predictions = 0
        self.prediction_sum = 0.0
        self.prediction_sum_squares = 0.0
        self.class_counts = np.zeros(max(len(self.classes), 1), dtype=np.int64)
        self.feedback = dict.fromkeys(FEEDBACK_OUTCOMES, 0)
        self.feedback_abs_error = 0.0
        self.feedback_squared_error = 0.0
        self.feedback_rows = 0
        self.concept_drift = ConceptDrift()

    # --- updates (hot path) -------------------------------------------------------------

    def bin_indices(self, rows: FloatArray) -> IndexArray:
        """Each value's reference bin, ``(rows, features)``, offset into one flat bin vector.

        A continuous value's bin is the number of edges at or below it
        (``searchsorted(edges, value, side="right")``). For a batch of a few rows that count
        is made for every column at once, one comparison with the padded edge matrix (a
        finite value is never at or above +inf), instead of one ``searchsorted`` per column;
        for many rows (the ``/drift`` window) column by column is the cheaper.
        """
        if len(rows) * self._edges.size <= _SMALL_BATCH_CELLS:
            counts: IndexArray = (self._edges <= rows[:, :, None]).sum(axis=2)
            counts += self._offsets
            return counts
        out = np.empty(rows.shape, dtype=np.intp)
        for j, cuts in enumerate(self._cuts):
            if self._categorical[j]:
                out[:, j] = rows[:, j]
            else:
                out[:, j] = np.searchsorted(cuts, rows[:, j], side="right")
        out += self._offsets
        return out

    def observe_batch(
        self, rows: FloatArray, scores: FloatArray, class_index: IndexArray | None
    ) -> None:
        """Account for one model call: prediction moments, class counts, and (if on) drift bins."""
        n = len(rows)
        self.batch_rows.observe(n)
        self.predictions += n
        self.prediction_sum += float(scores.sum())
        self.prediction_sum_squares += float(np.dot(scores, scores))
        if class_index is not None:
            self.class_counts += np.bincount(class_index, minlength=self.class_counts.size)
        if not self.drift_enabled:
            return
        self.bin_counts += np.bincount(self.bin_indices(rows).ravel(), minlength=self._total_bins)
        self._remember(rows, scores)

    def _remember(self, rows: FloatArray, scores: FloatArray) -> None:
        """Keep the last ``window`` rows and scores in a ring buffer for ``/drift``."""
        size = len(self.window_scores)
        if len(rows) >= size:
            rows, scores = rows[-size:], scores[-size:]
        n = len(rows)
        end = self._window_pos + n
        if end <= size:
            self.window_rows[self._window_pos : end] = rows
            self.window_scores[self._window_pos : end] = scores
        else:
            first = size - self._window_pos
            self.window_rows[self._window_pos :] = rows[:first]
            self.window_rows[: n - first] = rows[first:]
            self.window_scores[self._window_pos :] = scores[:first]
            self.window_scores[: n - first] = scores[first:]
        self._window_pos = end % size
        self.window_filled = min(self.window_filled + n, size)

    def observe_request(self, outcome: str, seconds: float) -> None:
        self.requests[outcome] += 1
        self.latency.observe(seconds)

    def observe_feedback(
        self, labels: Sequence[Any], classes: Sequence[Any], scores: Sequence[float]
    ) -> tuple[int, int]:
        """Record ground truth for earlier predictions; return (correct, incorrect).

        The errors are of the exported value: ``1{label == positive} - P(positive)`` for
        classifiers, ``label - prediction`` for regressors (so MAE and RMSE are PromQL).
        """
        right = sum(1 for y, k in zip(labels, classes, strict=True) if y == k)
        wrong = len(labels) - right
        if self.classification:
            self.feedback["correct"] += right
            self.feedback["incorrect"] += wrong
            positive = self.card.output.positive_class
            errors = [
                abs((1.0 if y == positive else 0.0) - s)
                for y, s in zip(labels, scores, strict=True)
            ]
        else:
            errors = [abs(y - s) for y, s in zip(labels, scores, strict=True)]
        self.feedback_abs_error += float(sum(errors))
        self.feedback_squared_error += float(sum(e * e for e in errors))
        self.feedback_rows += len(labels)
        self.concept_drift.observe(errors)
        return right, wrong

    # --- the drift report ---------------------------------------------------------------

    def window(self) -> tuple[FloatArray, FloatArray]:
        n = self.window_filled
        return self.window_rows[:n] if n < len(
            self.window_scores
        ) else self.window_rows, self.window_scores[:n]

    def drift_report(self, alpha: float = 0.05, min_rows: int = 50) -> dict[str, Any]:
        """Per-feature PSI, KS or chi-square over the recent window, Bonferroni-corrected."""
        rows, scores = self.window()
        n = len(scores)
        report: dict[str, Any] = {
            "window": {"rows": n, "capacity": len(self.window_scores)},
            "alpha": alpha,
            "enabled": self.drift_enabled,
        }
        if not self.drift_enabled:
            report.update(verdict="disabled", drift=None, features=[])
            return report
        if n < min_rows:
            report.update(
                verdict="insufficient_data",
                drift=None,
                features=[],
                message=f"{n} rows in the window, at least {min_rows} needed",
            )
            return report
        flat = np.bincount(self.bin_indices(rows).ravel(), minlength=self._total_bins)
        features: list[dict[str, Any]] = []
        p_values: list[float] = []
        for j, spec in enumerate(self.card.features):
            ref = self.card.reference_for(spec.name)
            counts = flat[self._offsets[j] : self._offsets[j] + len(self.bin_labels[j])]
            fractions = self.reference_fractions[j]
            extra: dict[str, Any] = {}
            if self._categorical[j]:
                test, result = "chi_square", stats.chi_square(counts, fractions)
                extra["live_shares"] = {
                    label: float(x)
                    for label, x in zip(self.bin_labels[j], stats.fractions(counts), strict=True)
                }
                extra["unseen"] = int(counts[-1])
            else:
                test, result = (
                    "ks",
                    stats.ks_binned(counts, fractions, self.card.reference_size),
                )
                extra["live_mean"] = float(rows[:, j].mean())
                extra["reference_mean"] = ref.mean
            value = stats.psi(counts, fractions)
            p_values.append(result.p_value)
            features.append(
                {
                    "feature": spec.name,
                    "kind": spec.kind,
                    "test": test,
                    "statistic": _finite(result.statistic),
                    "p_value": _finite(result.p_value),
                    "psi": _finite(value),
                    "psi_level": "major"
                    if value > stats.PSI_MAJOR
                    else "moderate"
                    if value > stats.PSI_MODERATE
                    else "stable",
                    **extra,
                }
            )
        rejected = stats.bonferroni_reject(p_values, alpha)
        for entry, drifted in zip(features, rejected, strict=True):
            entry["drift"] = bool(drifted or entry["psi_level"] == "major")
        pref = self.card.prediction_reference
        ref_n = float(self.card.reference_size)
        reference = stats.Moments(ref_n, pref.mean * ref_n, ref_n * (pref.std**2 + pref.mean**2))
        live = stats.Moments.of(scores)
        drifted_features = [f["feature"] for f in features if f["drift"]]
        report.update(
            corrected_alpha=stats.bonferroni_alpha(alpha, len(p_values)),
            drift=bool(drifted_features),
            verdict="drift" if drifted_features else "no_drift",
            drifted_features=drifted_features,
            features=features,
            predictions={
                "live_mean": live.mean,
                "live_standard_error": live.standard_error,
                "reference_mean": pref.mean,
                "divergence_z": _finite(stats.divergence_z(live, reference)),
            },
        )
        return report


def category_label(value: Any) -> str:
    """A category as a metric label: ``true``/``false``, numbers as ``%g``, strings as given."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    return str(value)


def _finite(value: float) -> float | None:
    """JSON has no NaN or Infinity: say ``null`` for NaN and a large number for infinity."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return 1e308 if value > 0 else -1e308
    return float(value)

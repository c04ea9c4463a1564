"""The Prometheus view of a ``Monitor``: every family built at scrape time.

Every series is a counter or histogram (plus constant reference gauges), labelled with
model, version and role, so sums over replicas and ``increase()`` over any window are
meaningful; the README gives the PromQL for PSI, KS and prediction divergence.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from modeldeploy.server import contract as c
from modeldeploy.server.monitor import Monitor, category_label

class_label = category_label


def _counter_name(name: str) -> str:
    return name[: -len("_total")] if name.endswith("_total") else name


class MonitorCollector(Collector):
    """Exports a ``Monitor`` at scrape time, into the app's own ``CollectorRegistry``."""

    def __init__(self, monitor: Monitor, sha256: str) -> None:
        self.monitor = monitor
        self.sha256 = sha256

    def collect(self) -> Iterator[Metric]:
        m = self.monitor
        base = list(c.COMMON_LABELS)
        lv = list(m.labels)

        info = GaugeMetricFamily(
            c.METRIC_MODEL_INFO,
            "The loaded model (always 1), with its sha256.",
            labels=base + [c.LABEL_SHA256],
        )
        info.add_metric(lv + [self.sha256], 1.0)
        yield info

        requests = CounterMetricFamily(
            _counter_name(c.METRIC_REQUESTS),
            "Prediction requests by outcome.",
            labels=base + [c.LABEL_OUTCOME],
        )
        for outcome, count in m.requests.items():
            requests.add_metric(lv + [outcome], count)
        yield requests

        latency = HistogramMetricFamily(
            c.METRIC_REQUEST_DURATION,
            "Prediction request latency from body received to response sent.",
            labels=base,
        )
        latency.add_metric(lv, m.latency.cumulative(), m.latency.total)
        yield latency

        batches = HistogramMetricFamily(
            c.METRIC_BATCH_ROWS, "Rows per model call (micro-batch size).", labels=base
        )
        batches.add_metric(lv, m.batch_rows.cumulative(), m.batch_rows.total)
        yield batches

        reference_rows = GaugeMetricFamily(
            c.METRIC_REFERENCE_ROWS, "Rows of the reference data the bins come from.", labels=base
        )
        reference_rows.add_metric(lv, float(m.card.reference_size))
        yield reference_rows

        yield from self._feature_families(base, lv)

        for name, doc, value in (
            (c.METRIC_PREDICTIONS, "Predicted rows.", m.predictions),
            (
                c.METRIC_PREDICTION_SUM,
                "Sum of the predicted value (P(positive class) for classifiers).",
                m.prediction_sum,
            ),
            (
                c.METRIC_PREDICTION_SUM_SQUARES,
                "Sum of squares of the predicted value.",
                m.prediction_sum_squares,
            ),
        ):
            fam = CounterMetricFamily(_counter_name(name), doc, labels=base)
            fam.add_metric(lv, value)
            yield fam
        if m.classification:
            classes = CounterMetricFamily(
                _counter_name(c.METRIC_PREDICTION_CLASS),
                "Predicted rows by class.",
                labels=base + [c.LABEL_CLASS],
            )
            reference = GaugeMetricFamily(
                c.METRIC_PREDICTION_CLASS_REFERENCE_FRACTION,
                "Share of each class in the model's predictions on the reference data.",
                labels=base + [c.LABEL_CLASS],
            )
            shares = m.card.prediction_reference.class_fractions
            for cls, count in zip(m.classes, m.class_counts.tolist(), strict=False):
                classes.add_metric(lv + [class_label(cls)], count)
                reference.add_metric(lv + [class_label(cls)], shares.get(str(cls), 0.0))
            yield classes
            yield reference

        feedback = CounterMetricFamily(
            _counter_name(c.METRIC_FEEDBACK),
            "Labelled outcomes received on /feedback.",
            labels=base + [c.LABEL_OUTCOME],
        )
        for outcome, count in m.feedback.items():
            feedback.add_metric(lv + [outcome], count)
        yield feedback
        abs_err = CounterMetricFamily(
            _counter_name(c.METRIC_FEEDBACK_ABS_ERROR),
            "Sum of |label - predicted value| over feedback rows.",
            labels=base,
        )
        abs_err.add_metric(lv, m.feedback_abs_error)
        yield abs_err
        sq_err = CounterMetricFamily(
            _counter_name(c.METRIC_FEEDBACK_SQUARED_ERROR),
            "Sum of (label - predicted value)^2 over feedback rows (RMSE in PromQL).",
            labels=base,
        )
        sq_err.add_metric(lv, m.feedback_squared_error)
        yield sq_err
        fb_rows = CounterMetricFamily(
            _counter_name(c.METRIC_FEEDBACK_ROWS),
            "Rows that received a label on /feedback.",
            labels=base,
        )
        fb_rows.add_metric(lv, m.feedback_rows)
        yield fb_rows
        alarms = CounterMetricFamily(
            _counter_name(c.METRIC_CONCEPT_DRIFT_ALARMS),
            "Concept drift alarms on the labelled errors (one-sided CUSUM, Page-Hinkley).",
            labels=base + [c.LABEL_DETECTOR],
        )
        statistic = GaugeMetricFamily(
            c.METRIC_CONCEPT_DRIFT_STATISTIC,
            "A concept drift detector's statistic as a share of its threshold (1 = alarm).",
            labels=base + [c.LABEL_DETECTOR],
        )
        for name, detector in m.concept_drift.by_detector().items():
            alarms.add_metric(lv + [name], detector.alarms)
            statistic.add_metric(lv + [name], detector.share)
        yield alarms
        yield statistic

    def _feature_families(self, base: list[str], lv: list[str]) -> Iterator[Metric]:
        m = self.monitor
        labels = base + [c.LABEL_FEATURE, c.LABEL_BIN]
        counts = CounterMetricFamily(
            _counter_name(c.METRIC_FEATURE_BIN), "Live values per reference bin.", labels=labels
        )
        cumulative = CounterMetricFamily(
            _counter_name(c.METRIC_FEATURE_CUMULATIVE),
            "Live values in this reference bin or any below it (for KS).",
            labels=labels,
        )
        ref = GaugeMetricFamily(
            c.METRIC_FEATURE_REFERENCE_FRACTION, "Reference share of each bin.", labels=labels
        )
        ref_cum = GaugeMetricFamily(
            c.METRIC_FEATURE_REFERENCE_CUMULATIVE,
            "Reference share of this bin and all below it (for KS).",
            labels=labels,
        )
        flat = m.bin_counts.tolist()
        for j, spec in enumerate(m.card.features):
            fractions = m.reference_fractions[j]
            offset = int(m._offsets[j])
            running, ref_running = 0, 0.0
            for k, label in enumerate(m.bin_labels[j]):
                value = flat[offset + k]
                running += value
                ref_running += fractions[k]
                key = lv + [spec.name, label]
                counts.add_metric(key, value)
                cumulative.add_metric(key, running)
                ref.add_metric(key, fractions[k])
                ref_cum.add_metric(key, min(ref_running, 1.0))
        yield counts
        yield cumulative
        yield ref
        yield ref_cum

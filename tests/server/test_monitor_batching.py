"""Monitoring bookkeeping and micro-batching, in process (no HTTP)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.server import stats
from modeldeploy.server.batching import MicroBatcher
from modeldeploy.server.bundle import read_card
from modeldeploy.server.examples import generate_traffic
from modeldeploy.server.exposition import MonitorCollector
from modeldeploy.server.monitor import Histogram, Monitor


@pytest.fixture
def monitor(bundles: dict[str, Any]) -> Monitor:
    return Monitor(read_card(bundles["good"].path), "candidate", window=300)


@pytest.mark.parametrize("rows", [1, 16, 64, 5000])
def test_bin_indices_equal_searchsorted_column_by_column(monitor: Monitor, rows: int) -> None:
    """Small batches take the all-columns-at-once comparison, large ones go column by
    column: both give each value ``searchsorted(edges, value, side="right")`` (a discrete
    code its own bin), values lying exactly on an edge included."""
    rng = np.random.default_rng(rows)
    x = generate_traffic(rows, seed=rows)
    card = monitor.card
    for j, spec in enumerate(card.features):
        if spec.kind != "categorical":
            edges = np.asarray(card.reference[j].edges)
            on_edge = rng.random(rows) < 0.3
            x[on_edge, j] = rng.choice(edges, int(on_edge.sum()))
    got = monitor.bin_indices(x)
    for j, spec in enumerate(card.features):
        column = got[:, j] - int(monitor._offsets[j])
        if spec.kind == "categorical":
            want = x[:, j].astype(np.intp)
        else:
            want = np.searchsorted(np.asarray(card.reference[j].edges), x[:, j], side="right")
        assert column.tolist() == want.tolist(), spec.name


def test_bin_counts_equal_per_feature_numpy(monitor: Monitor) -> None:
    x = generate_traffic(500, seed=11)
    scores = np.linspace(0, 1, 500)
    monitor.observe_batch(x[:200], scores[:200], np.zeros(200, dtype=np.intp))
    monitor.observe_batch(x[200:], scores[200:], np.ones(300, dtype=np.intp))
    card = monitor.card
    for j, spec in enumerate(card.features):
        ref = card.reference[j]
        offset = int(monitor._offsets[j])
        got = monitor.bin_counts[offset : offset + len(ref.fractions)]
        if spec.kind == "categorical":
            want = np.bincount(x[:, j].astype(int), minlength=2)
        else:
            want = stats.bin_counts(x[:, j], np.asarray(ref.edges))
        assert got.tolist() == want.tolist(), spec.name
    assert monitor.predictions == 500
    assert monitor.prediction_sum == pytest.approx(scores.sum())
    assert monitor.prediction_sum_squares == pytest.approx(float(scores @ scores))
    assert monitor.class_counts.tolist() == [200, 300]
    assert monitor.batch_rows.counts[bisect_bucket(200)] == 1


def bisect_bucket(value: float) -> int:
    from bisect import bisect_left

    from modeldeploy.server.monitor import BATCH_BUCKETS

    return bisect_left(BATCH_BUCKETS, value)


def test_window_keeps_the_most_recent_rows_across_wraps(monitor: Monitor) -> None:
    x = generate_traffic(1000, seed=12)
    scores = np.arange(1000, dtype=np.float64)
    for start in range(0, 1000, 70):
        monitor.observe_batch(x[start : start + 70], scores[start : start + 70], None)
    rows, kept = monitor.window()
    assert len(kept) == 300
    assert sorted(kept.tolist()) == list(range(700, 1000))
    order = np.argsort(kept)
    assert np.array_equal(rows[order], x[700:])


def test_drift_report_verdicts(monitor: Monitor) -> None:
    assert monitor.drift_report()["verdict"] == "insufficient_data"
    normal = generate_traffic(300, seed=13)
    monitor.observe_batch(normal, np.full(300, 0.2), None)
    report = monitor.drift_report()
    assert report["verdict"] == "no_drift", report
    assert report["corrected_alpha"] == pytest.approx(0.01)
    assert {f["test"] for f in report["features"]} == {"ks", "chi_square"}
    shifted = generate_traffic(300, seed=14, shifted=True)
    monitor.observe_batch(shifted, np.full(300, 0.6), None)
    report = monitor.drift_report()
    assert report["verdict"] == "drift"
    assert {"request_rate", "error_pct", "p99_latency_ms"} <= set(report["drifted_features"])
    assert all(f["psi"] > stats.PSI_MAJOR for f in report["features"][:3])


def test_drift_off_skips_bins_but_keeps_prediction_metrics(bundles: dict[str, Any]) -> None:
    m = Monitor(read_card(bundles["good"].path), "stable", drift=False)
    m.observe_batch(generate_traffic(50, seed=1), np.full(50, 0.5), None)
    assert m.bin_counts.sum() == 0 and m.window_filled == 0
    assert m.predictions == 50
    assert m.drift_report()["verdict"] == "disabled"


def test_exported_metrics_add_up_and_carry_the_labels(monitor: Monitor) -> None:
    x = generate_traffic(120, seed=15)
    monitor.observe_batch(x, np.full(120, 0.25), np.zeros(120, dtype=np.intp))
    monitor.observe_request("ok", 0.003)
    monitor.observe_request("client_error", 0.0001)
    monitor.observe_feedback([1.0, 0.0], [1, 1], [0.9, 0.8])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor, "ab" * 32))
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            assert (s.labels.get("model"), s.labels.get("role")) == (
                "incident-predictor",
                "candidate",
            ), s
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def total(name: str, **match: str) -> float:
        return sum(
            v
            for (n, labels), v in samples.items()
            if n == name and all((k, w) in labels for k, w in match.items())
        )

    for feature in ("request_rate", "is_weekend"):
        assert total("modeldeploy_feature_bin_total", feature=feature) == 120
        assert total("modeldeploy_feature_reference_fraction", feature=feature) == pytest.approx(
            1.0
        )
    last_bin = str(len(monitor.card.reference[0].fractions) - 1)
    assert (
        total("modeldeploy_feature_cumulative_total", feature="request_rate", bin=last_bin) == 120
    )
    assert total(
        "modeldeploy_feature_reference_cumulative_fraction", feature="request_rate", bin=last_bin
    ) == pytest.approx(1.0)
    assert total("modeldeploy_predictions_total") == 120
    assert total("modeldeploy_prediction_sum_total") == pytest.approx(30.0)
    assert total("modeldeploy_prediction_class_total", **{"class": "0"}) == 120
    assert total("modeldeploy_requests_total", outcome="ok") == 1
    assert total("modeldeploy_request_duration_seconds_count") == 2
    assert total("modeldeploy_feedback_total", outcome="correct") == 1
    assert total("modeldeploy_feedback_total", outcome="incorrect") == 1
    assert total("modeldeploy_feedback_abs_error_sum_total") == pytest.approx(0.1 + 0.8)
    assert total("modeldeploy_model_info", sha256="ab" * 32) == 1


def test_histogram_buckets_are_cumulative_le() -> None:
    h = Histogram((1, 2, 4))
    for v in (0.5, 1, 1.5, 3, 9):
        h.observe(v)
    assert h.cumulative() == [("1", 2), ("2", 3), ("4", 4), ("+Inf", 5)]
    assert h.count == 5 and h.total == 15


def test_batcher_predicts_concurrent_requests_together() -> None:
    calls: list[int] = []

    def predict(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        return rows[:, 0] * 10

    async def main() -> list[list[float]]:
        batcher: MicroBatcher[np.ndarray] = MicroBatcher(predict, max_rows=64, max_wait=0.05)

        async def one(i: int) -> list[float]:
            await asyncio.sleep(0)
            part = await batcher.submit(np.array([[float(i)], [float(i) + 0.5]]))
            return part.result[part.start : part.stop].tolist()

        return await asyncio.gather(*(one(i) for i in range(100)))

    results = asyncio.run(main())
    assert results == [[i * 10.0, i * 10.0 + 5.0] for i in range(100)]
    assert sum(calls) == 200
    assert max(calls) <= 64
    assert len(calls) < 10, calls


def test_batcher_hands_a_failure_to_every_request_of_the_batch_and_recovers() -> None:
    def predict(rows: np.ndarray) -> np.ndarray:
        if (rows < 0).any():
            raise ValueError("negative")
        return rows[:, 0]

    async def main() -> list[Any]:
        batcher: MicroBatcher[np.ndarray] = MicroBatcher(predict, max_rows=8, max_wait=0.01)
        first = await asyncio.gather(
            batcher.submit(np.array([[-1.0]])),
            batcher.submit(np.array([[2.0]])),
            return_exceptions=True,
        )
        after = await batcher.submit(np.array([[3.0]]))
        return [*first, after.result[after.start : after.stop].tolist()]

    a, b, after = asyncio.run(main())
    assert isinstance(a, ValueError) and isinstance(b, ValueError)
    assert after == [3.0]


def test_batcher_alone_request_does_not_wait_for_the_full_bound() -> None:
    import time

    async def main() -> float:
        batcher: MicroBatcher[np.ndarray] = MicroBatcher(lambda r: r, max_rows=8, max_wait=1.0)
        start = time.perf_counter()
        await batcher.submit(np.zeros((1, 1)))
        return time.perf_counter() - start

    assert asyncio.run(main()) < 0.5

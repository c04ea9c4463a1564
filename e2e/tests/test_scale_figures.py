"""The scale benchmark's arithmetic on the operator's histograms, without a cluster: what a
histogram observed between two readings of its exposition, and its quantiles."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from e2e.scale.run import buckets, delta_quantiles

METRIC = "modeldeploy_operator_analysis_tick_lag_seconds"


def exposition(values: list[float], registry: CollectorRegistry, h: Histogram) -> str:
    for v in values:
        h.observe(v)
    return generate_latest(registry).decode()


def test_only_what_was_observed_between_the_readings_counts() -> None:
    reg = CollectorRegistry()
    h = Histogram(METRIC, "lag", buckets=(0.5, 1, 2, 5, 10), registry=reg)
    before = buckets(exposition([8.0] * 50, reg, h), METRIC + "_bucket")
    after = buckets(exposition([0.2] * 99 + [4.0], reg, h), METRIC + "_bucket")
    assert before[float("inf")] == 50 and after[float("inf")] == 150
    p50, p99, count = delta_quantiles(before, after)
    assert count == 100
    # 99 of the 100 fell in the first bucket: both quantiles are inside it, and the earlier
    # 8 s observations do not pull them up
    assert 0 < p50 <= 0.5 and 0 < p99 <= 0.5


def test_a_tail_beyond_the_last_bound_reads_as_that_bound() -> None:
    reg = CollectorRegistry()
    h = Histogram(METRIC, "lag", buckets=(1, 10), registry=reg)
    after = buckets(exposition([30.0] * 10, reg, h), METRIC + "_bucket")
    assert delta_quantiles({}, after)[:2] == (10.0, 10.0)


def test_nothing_observed_is_not_a_number() -> None:
    reg = CollectorRegistry()
    Histogram(METRIC, "lag", registry=reg)
    empty = buckets(generate_latest(reg).decode(), METRIC + "_bucket")
    p50, p99, count = delta_quantiles(empty, empty)
    assert math.isnan(p50) and math.isnan(p99) and count == 0

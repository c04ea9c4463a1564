"""The operator at a small scale in CI: 30 ModelDeployments on the fake node (kwok), all rolled
to v2 at once, every 10th v2 diverging or drifting in the synthetic exporter; the project's
rules in the real Prometheus; one operator process. Batched analysis must roll back exactly
that subset and promote the rest (`make bench-operator` runs the same at N = 100 ... 500).
Then the same with a fifth of them analysed by a Prometheus that never answers: those never
promote, and the others end exactly as injected."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cluster.api import Cluster
from e2e.scale import stall
from e2e.scale.bench import report
from e2e.scale.env import ScaleEnv, scale_env
from e2e.scale.run import faulty, measure, stalled_subset

pytestmark = pytest.mark.cluster
N = 30


@pytest.fixture
def env(cluster: Cluster, tmp_path: Path) -> Iterator[ScaleEnv]:
    with scale_env(cluster, tmp_path, label="scale-ci") as e:
        yield e


def test_batched_analysis_rolls_back_exactly_the_injected_subset(env: ScaleEnv) -> None:
    bad = faulty(N)
    assert len(bad) == 3 and set(bad.values()) == {"diverge", "drift"}
    r = measure(env, N, analysis="60s")
    report(r)
    assert r.wrong == [], r
    assert r.outcomes == {"Promoted": N - len(bad), "RolledBack": len(bad)}
    # the rollbacks came from the alerts Prometheus fired for those candidates
    assert not math.isnan(r.rollback_p99), r
    # batched: a constant number of Prometheus requests per poll, whatever N. A full poll
    # reads the alerts, the loaded rules and two queries (scraped versions, prediction
    # counters); between full polls the alerts alone are read once a second.
    prom = r.prometheus
    assert r.polls > 0, r
    assert prom.get("/api/v1/rules", 0) <= r.polls + 2, r
    assert prom.get("/api/v1/query", 0) <= 2 * r.polls + 2, r
    assert prom.get("/api/v1/alerts", 0) <= r.polls + r.seconds + 5, r
    other = {k for k in prom if k.startswith("/api/")} - {
        "/api/v1/rules",
        "/api/v1/query",
        "/api/v1/alerts",
    }
    assert other == set(), r
    # no LIST per resource: the operator's lists are its watches' (re)starts, not per object
    assert r.api.get("list", 0) < N, r


@pytest.fixture
def stalled_prometheus() -> Iterator[str]:
    with stall.stalled_prometheus() as url:
        yield url


def test_a_stalled_prometheus_holds_back_only_its_own_model_deployments(
    env: ScaleEnv, stalled_prometheus: str
) -> None:
    bad = faulty(N)
    stalled = stalled_subset(N)
    assert len(stalled) == 6 and not stalled & set(bad)
    r = measure(env, N, analysis="60s", elsewhere=(stalled, stalled_prometheus))
    report(r)
    # Nothing analysed by the stalled one promotes (each is rolled back as inconclusive at
    # the default consecutiveErrorLimit); the others end exactly as injected, their bad ones
    # rolled back by the alerts the real Prometheus fired.
    assert r.wrong == [], r
    assert r.outcomes == {
        "Promoted": N - len(bad) - len(stalled),
        "RolledBack": len(bad) + len(stalled),
    }, r
    assert not math.isnan(r.rollback_p99) and not math.isnan(r.healthy_done_s), r

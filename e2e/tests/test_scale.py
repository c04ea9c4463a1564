"""The operator at a small scale in CI: 30 ModelDeployments on the fake node (kwok), all rolled
to v2 at once, every 10th v2 diverging or drifting in the synthetic exporter; the project's
rules in the real Prometheus; one operator process. Batched analysis must roll back exactly
that subset and promote the rest (`make bench-operator` runs the same at N = 100 ... 500)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cluster.api import Cluster
from e2e.scale.bench import report
from e2e.scale.env import ScaleEnv, scale_env
from e2e.scale.run import faulty, measure

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

"""Two operator replicas with kopf peering: one acts, the other takes over when it dies."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opcluster import CANARY, Env, Operator, operator_env, wait

from e2e.cluster.api import Cluster

pytestmark = pytest.mark.cluster

PEERING_CRDS = (
    Path(__file__).resolve().parents[2]
    / "charts"
    / "modeldeploy"
    / "crds"
    / "kopf.dev_peerings.yaml"
)


def reconciles(op: Operator) -> float:
    text = op.metrics()
    return sum(
        float(v)
        for v in re.findall(
            r"^modeldeploy_operator_reconciles_total\{[^}]*\} ([0-9.e+]+)$", text, re.M
        )
    )


@pytest.fixture(scope="module")
def peers(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Env, Operator, Operator]]:
    if not PEERING_CRDS.exists():
        pytest.skip("kopf's peering CRDs are not in the chart")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    logs = tmp_path_factory.mktemp("peers")
    with operator_env(cluster, logs / "unused.log", start=False) as env:
        # kopf peers through a KopfPeering object of this name in the watched namespace
        cluster.apply(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "KopfPeering",
                "metadata": {"name": "modeldeploy", "namespace": env.namespace},
            }
        )
        ops = []
        for priority in (2, 1):
            op = Operator(
                cluster,
                env.namespace,
                logs / f"op{priority}.log",
                extra=("--peering", "modeldeploy", "--priority", str(priority)),
            )
            op.start()
            ops.append(op)
        try:
            yield env, ops[0], ops[1]
        finally:
            for op in ops:
                op.stop()


def test_one_replica_acts_and_the_other_takes_over(peers: tuple[Env, Operator, Operator]) -> None:
    env, high, low = peers
    name = "peered"
    env.apply(env.manifest(name, "v1", CANARY))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    assert reconciles(high) > 0
    assert reconciles(low) == 0, "the lower priority replica must stay paused"
    high.kill()
    killed = time.monotonic()
    env.apply(env.manifest(name, "v2", CANARY))
    env.wait_phase(name, "Progressing", candidateVersion="v2", timeout=300)
    takeover = time.monotonic() - killed
    print(f"fail-over: the standby acted {takeover:.1f}s after the active replica was killed")
    assert reconciles(low) > 0
    env.wait_phase(name, "Healthy", stableVersion="v2")
    assert wait("standby kept reconciling", lambda: reconciles(low) > 1)

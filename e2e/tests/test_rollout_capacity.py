"""Never below Ready capacity, on the real cluster at the CRD's default of 2 replicas, under
traffic that is never retried (a new connection per request; a refused, reset or timed-out
attempt, or any answer but 200, is a failure): a candidate that never becomes Ready at
``setWeight: 100`` costs no request, and neither does a rollback from 100%. The traffic starts
once the Service answers (``Env.traffic``): the losses full runs once saw here were requests
sent before kube-proxy had programmed the new Service's address ("Network is unreachable" at
0.0 s and 0.1 s), not the rollout's."""

from __future__ import annotations

import time

import pytest

from e2e import stack as st

from .rollout_env import Env, env  # noqa: F401

pytestmark = pytest.mark.cluster

ALL_IN = {"canary": {"steps": [{"setWeight": 100}, {"analysis": {"duration": "60s"}}]}}
REPLICAS = 2  # the CRD's default


def deployment(e: Env, name: str) -> dict[str, object]:
    return e.cluster.kubectl_json("get", "deployment", name, "-n", e.stack.namespace)


def test_a_candidate_never_ready_at_100_costs_no_request(env: Env) -> None:  # noqa: F811
    name = "neverready"
    env.deploy(name, "v1", ALL_IN, replicas=REPLICAS)
    env.healthy(name, "v1")
    with env.traffic(name, rate=10, max_seconds=300, retries=0) as traffic:
        time.sleep(3)
        moments = {"v2 applied": traffic.clock()}
        # v2's bundle pinned by a digest it does not have: its pods never become Ready.
        env.deploy(name, "v2", ALL_IN, replicas=REPLICAS, sha256="0" * 64)
        st.wait(
            "the candidate's pods created",
            lambda: (deployment(env, f"{name}-green").get("status") or {}).get("replicas"),
            120,
        )
        time.sleep(30)  # long enough for a scale-down of the stable to have happened
        stable = deployment(env, f"{name}-blue")
        assert stable["spec"]["replicas"] == REPLICAS, stable["spec"]  # type: ignore[index]
        assert stable["status"]["readyReplicas"] == REPLICAS  # type: ignore[index]
        status = st.status(env.stack, name)
        assert status["canaryWeight"] == 100 and status["candidateVersion"] == "v2"
        moments["abort"] = traffic.clock()
        env.control(name, "abort")
        aborted = env.finished(name, "v2")
        assert aborted["outcome"] == "Aborted", aborted
        moments["aborted"] = traffic.clock()
        time.sleep(5)
    tally = traffic.tally
    assert tally.sent > 300 and tally.lost == 0, (tally.as_dict(), moments)
    assert set(tally.by_version) == {"v1"}, tally.as_dict()


def test_a_rollback_from_100_costs_no_request(env: Env) -> None:  # noqa: F811
    name = "rollback100"
    env.deploy(name, "v1", ALL_IN, replicas=REPLICAS)
    env.healthy(name, "v1")
    with env.traffic(name, rate=10, max_seconds=400, retries=0) as traffic:
        time.sleep(3)
        env.deploy(name, "v4", ALL_IN, replicas=REPLICAS)  # drifted: its drift alert fires
        st.wait(
            "all of the traffic on the candidate",
            lambda: set(traffic.recent_versions(3)) == {"v4"},
            180,
            detail=lambda: st.describe(env.stack, name),
        )
        rolled = env.finished(name, "v4")
        assert rolled["outcome"] == "RolledBack", rolled
        assert "ModelFeatureDrift" in rolled["message"], rolled
        st.wait(
            "traffic back on the stable only",
            lambda: set(traffic.recent_versions(4)) == {"v1"},
            60,
            detail=lambda: str(traffic.snapshot().as_dict()),
        )
    tally = traffic.tally
    assert tally.by_version["v4"] > 0 and tally.by_version["v1"] > 0, tally.as_dict()
    assert tally.lost == 0, tally.as_dict()

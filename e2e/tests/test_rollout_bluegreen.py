"""Blue/green on the real cluster: a good version passes pre-promotion analysis on its
preview Service and the main Service switches to it; a drifted one is stopped by
ModelFeatureDrift before the switch. Live traffic on both Services; none lost."""

from __future__ import annotations

import http.client
import time

import pytest

from e2e import stack as st
from e2e.traffic import example_rows, predict

from .rollout_env import Env, assert_none_lost, env  # noqa: F401

pytestmark = pytest.mark.cluster
DRIFT_ONLY = ["ModelFeatureDrift", "ModelHighErrorRate"]


def test_blue_green_promotes_a_good_version_and_stops_a_drifted_one(env: Env) -> None:  # noqa: F811
    name = "bg"
    strategy = st.blue_green(pre="30s", auto_seconds=2)
    env.deploy(name, "v1", strategy, replicas=2)
    env.healthy(name, "v1")
    with env.traffic(name, rate=20, max_seconds=400) as traffic:
        time.sleep(3)
        env.deploy(name, "v2", strategy, replicas=2)
        # Between rollouts the preview Service selects the stable slot: send preview traffic
        # only once it selects the candidate's slot, so every answer there is the new version.
        st.wait(
            "preview Service on the candidate's ready slot",
            lambda: preview_ready(env, name),
            120,
            detail=lambda: st.describe(env.stack, name),
        )
        with env.traffic(f"{name}-preview", rate=10, max_seconds=200, seed=3) as preview:
            promoted = env.finished(name, "v2")
        assert promoted["outcome"] == "Promoted", promoted
        assert set(preview.tally.by_version) == {"v2"}  # the preview served only the new one
        assert_none_lost(preview.tally)
        switched = time.monotonic()
        st.wait(
            "main Service answers only v2",
            lambda: set(traffic.recent_versions(3)) == {"v2"},
            60,
            detail=lambda: f"{traffic.recent_versions(3)}\n{st.describe(env.stack, name)}",
        )
        print(f"main Service switched {time.monotonic() - switched:.1f} s after the promotion")

        # The drifted model's predictions also differ from the stable's: watch drift only,
        # so the test shows that the drift alert alone stops the switch.
        env.deploy(name, "v4", strategy, replicas=2, analysis={"alerts": DRIFT_ONLY})
        with env.traffic(f"{name}-preview", rate=10, max_seconds=200, seed=5) as preview:
            stopped = env.finished(name, "v4")
        assert stopped["outcome"] == "RolledBack", stopped
        assert "ModelFeatureDrift" in stopped["message"], stopped
        assert preview.tally.by_version["v4"] > 0
        assert_none_lost(preview.tally)
        status = st.status(env.stack, name)
        assert status["stableVersion"] == "v2" and status["phase"] == "Degraded"
        time.sleep(3)
    tally = traffic.tally
    assert tally.by_version["v4"] == 0, tally.as_dict()  # the switch never happened
    assert tally.by_version["v1"] > 0 and tally.by_version["v2"] > 0
    assert_none_lost(tally)


def preview_ready(env: Env, name: str) -> bool:  # noqa: F811
    """Whether the preview Service selects the candidate's slot and that slot has a ready pod."""
    ns = env.stack.namespace
    proc = env.cluster.kubectl(
        "get",
        "service",
        f"{name}-preview",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.selector.modeldeploy\\.io/slot}",
        check=False,
    )
    slot = proc.stdout.strip() if proc.returncode == 0 else ""
    if not slot or slot == st.status(env.stack, name).get("stableSlot"):
        return False
    ready = env.cluster.kubectl(
        "get",
        "deployment",
        f"{name}-{slot}",
        "-n",
        ns,
        "-o",
        "jsonpath={.status.readyReplicas}",
        check=False,
    )
    if ready.returncode != 0 or ready.stdout.strip() in ("", "0"):
        return False
    # The preview moves to the candidate once it has a Ready pod; kube-proxy follows a moment
    # later: ten answers in a row from the candidate say it has.
    stable = st.status(env.stack, name).get("stableVersion")
    host = st.service_ip(env.stack, f"{name}-preview")
    rows = example_rows(4, 0, False)
    for _ in range(10):
        try:
            version, _ = predict(host, rows)
        except (OSError, http.client.HTTPException):
            return False
        if version == stable:
            return False
    return True

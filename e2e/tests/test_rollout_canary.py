"""Canary rollouts on the real cluster under real traffic: a good version is promoted step by
step, a diverging one is rolled back by ModelPredictionDivergence, and no request is lost."""

from __future__ import annotations

import time

import pytest

from e2e import stack as st
from e2e.observer import Observer

from .rollout_env import Env, assert_none_lost, env  # noqa: F401

pytestmark = pytest.mark.cluster


def test_canary_promoted_step_by_step_then_diverging_rolled_back(env: Env) -> None:  # noqa: F811
    name = "canary"
    # 30 s analysis steps: at 25% of 20 requests/s of 4 rows the candidate serves a few
    # hundred predictions in a step, well above the default analysis.minSamples (100)
    # (10 s steps measured 84 on a loaded machine: too few, and the rollout paused).
    strategy = st.canary(25, 50, 75, analysis="30s")
    env.deploy(name, "v1", strategy)
    env.healthy(name, "v1")
    obs = Observer(env.stack, name)
    with env.traffic(name, rate=20, max_seconds=400) as traffic:
        obs.start()
        time.sleep(4)
        started = time.time()
        env.deploy(name, "v2", strategy)
        promoted = env.finished(name, "v2")
        assert promoted["outcome"] == "Promoted", promoted
        weights = [s.weight for s in obs.samples if s.candidate == "v2" and s.t >= started]
        seen = sorted(set(weights), key=weights.index)
        assert seen == [25, 50, 75, 100], weights  # every step, in order, none skipped
        assert st.status(env.stack, name)["stableVersion"] == "v2"
        both = traffic.snapshot().by_version
        assert both["v1"] > 0 and both["v2"] > 0, both  # the Service answered from both

        env.deploy(name, "v3", strategy)
        rolled = env.finished(name, "v3")
        assert rolled["outcome"] == "RolledBack", rolled
        assert "ModelPredictionDivergence" in rolled["message"], rolled
        status = st.status(env.stack, name)
        assert status["phase"] == "Degraded" and status["stableVersion"] == "v2"
        assert status["canaryWeight"] == 0
        reasons = [e["reason"] for e in st.events(env.stack, name)]
        assert "RolledBack" in reasons
        time.sleep(8)
        recent = traffic.recent_versions(4)
        assert set(recent) == {"v2"}, recent  # traffic is back on the stable only
        obs.stop()
    tally = traffic.tally
    assert tally.by_version["v3"] > 0, tally.as_dict()  # v3 did get live traffic before
    assert_none_lost(tally)

"""Shadow on the real cluster: the candidate runs at full size and sees a copy of the live
requests, its answers are only compared. Shadow needs a routed provider (the CRD refuses it
with ``replicas``); the ModelDeployment uses ``gatewayAPI``, whose HTTPRoute would carry a
RequestMirror filter, but no Gateway runs here, so the traffic generator mirrors each request
to the candidate's Service itself, the way the gateway would. A diverging candidate is rolled
back by ModelPredictionDivergence, a good one is promoted; clients only ever get the stable's
answers while a candidate is in shadow."""

from __future__ import annotations

import pytest

from e2e import stack as st

from .rollout_env import Env, assert_none_lost, env  # noqa: F401

pytestmark = pytest.mark.cluster


def test_shadow_compares_then_rolls_back_diverging_and_promotes_good(env: Env) -> None:  # noqa: F811
    name = "shadow"
    shadow = {"shadow": {"duration": "25s", "autoPromote": True}}
    # One replica, not the default 2: a shadow runs both slots at full size, and one pod
    # each keeps the shared 2-core machine light; the mirrored traffic is the same.
    routed = {"provider": {"gatewayAPI": {"httpRoute": f"{name}-route"}}, "replicas": 1}
    env.deploy(name, "v1", shadow, **routed)
    env.healthy(name, "v1")
    with env.traffic(name, rate=20, max_seconds=400) as traffic:
        env.deploy(name, "v3", shadow, **routed)
        st.wait(
            "shadow Service",
            lambda: (
                env.cluster.kubectl(
                    "get", "service", f"{name}-canary", "-n", env.stack.namespace, check=False
                ).returncode
                == 0
            ),
            60,
        )
        traffic.mirror_to(st.service_ip(env.stack, f"{name}-canary"))
        rolled = env.finished(name, "v3", timeout=180)
        traffic.mirror_to(None)
        assert rolled["outcome"] == "RolledBack", rolled
        assert "ModelPredictionDivergence" in rolled["message"], rolled
        assert traffic.mirrored.by_version["v3"] > 30, traffic.mirrored.as_dict()
        assert set(traffic.snapshot().by_version) == {"v1"}  # clients never saw v3

        # No waiting for v3's alerts to clear: they are v3's (version label) and never
        # count against v2, which follows at once.
        env.deploy(name, "v2", shadow, **routed)
        traffic.mirror_to(st.service_ip(env.stack, f"{name}-canary"))
        promoted = env.finished(name, "v2", timeout=180)
        traffic.mirror_to(None)
        assert promoted["outcome"] == "Promoted", promoted
        assert traffic.mirrored.by_version["v2"] > 30, traffic.mirrored.as_dict()
        st.wait("clients answered by v2", lambda: set(traffic.recent_versions(3)) == {"v2"}, 60)
    assert_none_lost(traffic.tally)

"""The ``gatewayAPI`` provider against the real Gateway API CRDs (sigs.k8s.io/gateway-api
v1.4.1 from the Go module proxy, config/crd/standard): the operator installed by the chart
writes HTTPRoutes that the apiserver accepts under that schema, with the backend weights of
each canary step. No request goes through these routes here (test_traefik_gateway.py sends
real traffic through Traefik on routes of its own); the replicas provider carries the real
traffic in the rollout tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e import stack as st
from e2e import traefik
from e2e.cluster.api import Cluster

from .rollout_env import Env, make_env

pytestmark = pytest.mark.cluster

CRD = "httproutes.gateway.networking.k8s.io"
CRD_FILE = "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"


@pytest.fixture(scope="module")
def gw_env(cluster: Cluster) -> Iterator[Env]:
    ours = cluster.kubectl("get", "crd", CRD, check=False).returncode != 0
    if ours:
        crd = traefik.module_dir(traefik.GATEWAY_API_MODULE) / CRD_FILE
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
    cluster.wait_established(CRD)
    try:
        with make_env(cluster, {"v1": "good", "v2": "good"}) as env:  # after the CRD: the
            yield env  # operator sees the API
    finally:
        if ours:
            # Wait for it to go: a CRD still terminating would look present to the next test.
            cluster.kubectl("delete", "crd", CRD, "--timeout=120s", check=False)


def weights(env: Env, route: str) -> list[tuple[str, int]]:
    obj = env.cluster.kubectl_json("get", "httproute", route, "-n", env.stack.namespace)
    return [(b["name"], b["weight"]) for b in obj["spec"]["rules"][0]["backendRefs"]]


def test_http_route_weights_follow_each_canary_step(gw_env: Env) -> None:
    env, name, route = gw_env, "gw", "gw-route"
    strategy = {
        "canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]}
    }
    provider = {
        "gatewayAPI": {
            "httpRoute": route,
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
        }
    }
    env.deploy(name, "v1", strategy, replicas=2, provider=provider)
    env.healthy(name, "v1")
    assert weights(env, route) == [("gw-blue", 100)]
    env.deploy(name, "v2", strategy, replicas=2, provider=provider)
    ns = env.stack.namespace

    def at_pause(step: int) -> dict | None:
        s = st.status(env.stack, name)
        return s if s.get("currentStep") == step and s.get("phase") == "Paused" else None

    for step, weight in ((1, 20), (3, 60)):
        st.wait(
            f"pause at step {step}",
            lambda step=step: at_pause(step),
            180,
            detail=lambda: st.describe(env.stack, name),
        )
        assert st.wait(
            f"route at {weight}%",
            lambda weight=weight: (
                weights(env, route) == [("gw-blue", 100 - weight), ("gw-green", weight)]
            ),
            30,
        )
        env.control(name, f"promote/{step}")
    done = env.finished(name, "v2")
    assert done["outcome"] == "Promoted", done
    st.wait("route all to green", lambda: weights(env, route) == [("gw-green", 100)], 30)
    obj = env.cluster.kubectl_json("get", "httproute", route, "-n", ns)
    assert obj["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "gateways",
        }
    ]
    owners = obj["metadata"]["ownerReferences"]
    assert owners[0]["kind"] == "ModelDeployment" and owners[0]["name"] == name

"""The ``gatewayAPI`` provider against the real Gateway API CRDs (sigs.k8s.io/gateway-api
v1.4.1 from the Go module proxy, config/crd/standard): the operator installed by the chart
writes HTTPRoutes that the apiserver accepts under that schema, with the backend weights of
each canary step. No Gateway implementation runs on the local cluster, so no request goes
through these routes; the replicas provider carries the real traffic in the other tests."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e import stack as st
from e2e.cluster.api import Cluster

from .rollout_env import Env, make_env

pytestmark = pytest.mark.cluster

MODULE = "sigs.k8s.io/gateway-api@v1.4.1"
CRD = "httproutes.gateway.networking.k8s.io"
CRD_FILE = "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"


def module_dir(tmp: Path) -> Path:
    """``go mod download`` through the default module proxy; the module's folder."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    out = subprocess.run(
        ["go", "mod", "download", "-json", MODULE],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return Path(json.loads(out)["Dir"])


@pytest.fixture(scope="module")
def gw_env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    ours = cluster.kubectl("get", "crd", CRD, check=False).returncode != 0
    if ours:
        crd = module_dir(tmp_path_factory.mktemp("gomod")) / CRD_FILE
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
    # Poll rather than `kubectl wait`, which errors on a CRD whose status is not written yet.
    st.wait(
        f"{CRD} established",
        lambda: (
            cluster.kubectl(
                "get",
                "crd",
                CRD,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                check=False,
            ).stdout
            == "True"
        ),
        timeout=60,
    )
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
        env.cluster.kubectl(
            "annotate",
            "--overwrite",
            st.KIND,
            name,
            "-n",
            ns,
            f"modeldeploy.io/control=promote/{step}",
        )
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

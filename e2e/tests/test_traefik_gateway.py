"""Traefik (v3.6.12, built from its Go module by the harness) as a real gateway on the local
cluster, in front of two real model servers: the HTTPRoute's backend weights, and Traefik's
own weighted and mirroring TraefikServices, measured on the requests that really went
through it. Traffic goes only to Traefik's Service ClusterIP (checked by e2e.traffic) and to
the mirror pod's own address for its metrics."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from e2e import stack as st
from e2e import traefik
from e2e.cluster.api import Cluster
from modeldeploy.server import contract as c

from .rollout_env import Env, make_env

pytestmark = pytest.mark.cluster

REQUESTS = 400
TOLERANCE = 0.03  # points of share, on 400 requests
ROUTE = "models"
FIRST, SECOND = "first", "second"  # ModelDeployments serving v1 and v2


@pytest.fixture(scope="module")
def gateway(cluster: Cluster) -> Iterator[traefik.Gateway]:
    with traefik.installed(cluster) as gw:
        yield gw
    # A clean uninstall: nothing of Traefik's is left, cluster-wide objects and CRDs included.
    left = [
        f"{kind}/{name}"
        for kind, name in (
            ("namespace", traefik.NAMESPACE),
            ("clusterrole", f"{traefik.NAMESPACE}-{traefik.NAME}"),
            ("clusterrolebinding", f"{traefik.NAMESPACE}-{traefik.NAME}"),
            *(("crd", crd) for crd in gw.added_crds),
        )
        if cluster.kubectl("get", kind, name, check=False).returncode == 0
    ]
    assert not left, left


@pytest.fixture(scope="module")
def models(gateway: traefik.Gateway, cluster: Cluster) -> Iterator[Env]:
    with make_env(cluster, {"v1": "good", "v2": "good"}) as env:
        # One pod each (not the CRD's 2): the gateway splits between Services, the pods
        # behind each only have to answer, and the node has 2 cores.
        env.deploy(FIRST, "v1", st.canary(100), replicas=1)
        env.deploy(SECOND, "v2", st.canary(100), replicas=1)
        env.healthy(FIRST, "v1")
        env.healthy(SECOND, "v2")
        yield env


def route(env: Env, gw: traefik.Gateway, backends: list[dict[str, Any]]) -> None:
    env.cluster.apply(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": ROUTE, "namespace": env.stack.namespace},
            "spec": {"parentRefs": [gw.parent_ref], "rules": [{"backendRefs": backends}]},
        }
    )

    st.wait(
        f"HTTPRoute {ROUTE} accepted by Traefik",
        lambda: traefik.route_accepted(env.cluster, env.stack.namespace, ROUTE),
        60,
    )


def service(name: str, weight: int) -> dict[str, Any]:
    return {"name": name, "port": c.DEFAULT_PORT, "weight": weight}


def traefik_service(env: Env, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    env.cluster.apply(
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "TraefikService",
            "metadata": {"name": name, "namespace": env.stack.namespace},
            "spec": spec,
        }
    )
    return {"group": "traefik.io", "kind": "TraefikService", "name": name}


def converge(gw: traefik.Gateway, done: Any, what: str, limit: int = 3000) -> None:
    """Requests until ``done(versions seen)`` holds: Traefik applies a route change a moment
    after the apiserver has it, longer on a loaded machine (bounded: ``limit`` requests and
    60 s)."""
    seen: list[str] = []
    deadline = time.monotonic() + 60
    for _ in range(limit):
        answers, _ = traefik.send(gw, 1)
        seen += list(answers.elements())
        if done(seen):
            return
        if time.monotonic() > deadline:
            break
    raise AssertionError(
        f"{what}: not within {len(seen)} answers and 60 s (last {seen[-20:]})\n"
        f"{traefik.diagnostics(gw)}"
    )


def both(seen: list[str]) -> bool:
    return {"v1", "v2"} <= set(seen[-20:])


def only_v1(seen: list[str]) -> bool:
    return len(seen) >= 20 and set(seen[-20:]) == {"v1"}


def assert_shares(answers: Counter[str], errors: list[str], v1: float) -> None:
    assert not errors, errors[:10]
    assert sum(answers.values()) == REQUESTS, answers
    shares = {v: n / REQUESTS for v, n in answers.items()}
    print(f"measured over {REQUESTS} requests: {dict(answers)}")
    assert abs(shares.get("v1", 0) - v1) <= TOLERANCE, shares
    assert abs(shares.get("v2", 0) - (1 - v1)) <= TOLERANCE, shares


def test_http_route_weights_split_real_traffic(gateway: traefik.Gateway, models: Env) -> None:
    route(models, gateway, [service(FIRST, 25), service(SECOND, 75)])
    converge(gateway, both, "both versions answering through the gateway")
    answers, errors = traefik.send(gateway, REQUESTS)
    assert_shares(answers, errors, 0.25)

    route(models, gateway, [service(FIRST, 100), service(SECOND, 0)])
    converge(gateway, only_v1, "the route at 100/0")
    answers, errors = traefik.send(gateway, REQUESTS)
    assert not errors, errors[:10]
    assert answers == Counter({"v1": REQUESTS}), answers


def test_weighted_traefik_service(gateway: traefik.Gateway, models: Env) -> None:
    split = traefik_service(
        models,
        "split",
        {"weighted": {"services": [service(FIRST, 1), service(SECOND, 3)]}},
    )
    route(models, gateway, [split])
    converge(gateway, both, "both versions answering through the TraefikService")
    answers, errors = traefik.send(gateway, REQUESTS)
    assert_shares(answers, errors, 0.25)


def settled(env: Env, name: str) -> float:
    """The mirror's own request counter once it has stopped moving."""
    selector = f"app.kubernetes.io/name={name},app.kubernetes.io/component=model-server"
    return traefik.settled_total(env.cluster, env.stack.namespace, selector)


def test_mirroring_traefik_service(gateway: traefik.Gateway, models: Env) -> None:
    shadow = traefik_service(
        models,
        "shadow",
        {
            "mirroring": {
                "name": FIRST,
                "port": c.DEFAULT_PORT,
                "mirrors": [{"name": SECOND, "port": c.DEFAULT_PORT, "percent": 100}],
            }
        },
    )
    route(models, gateway, [shadow])
    converge(gateway, only_v1, "the mirroring service answering")
    before = settled(models, SECOND)
    answers, errors = traefik.send(gateway, REQUESTS)
    assert not errors, errors[:10]
    assert answers == Counter({"v1": REQUESTS}), answers
    assert settled(models, SECOND) - before == REQUESTS


def test_install_is_idempotent(gateway: traefik.Gateway, cluster: Cluster) -> None:
    def pod_uids() -> list[str]:
        pods = cluster.kubectl_json("get", "pods", "-n", traefik.NAMESPACE)["items"]
        return sorted(p["metadata"]["uid"] for p in pods)

    before = pod_uids()
    again = traefik.install(cluster)
    assert again.service_ip == gateway.service_ip
    assert again.added_crds == ()  # the first install's CRDs are found, not re-created
    assert pod_uids() == before  # the same pod: nothing restarted

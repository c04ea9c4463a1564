"""Traffic routers: how a weight becomes replicas, which API each needs, which can mirror,
``router_for``, the protocol, and what the handler does when a router's API is missing.

What the routers render is pinned in test_operator_routers_render.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, cast

import kopf
import pytest
from opworld import spec

from modeldeploy.operator import converge, handlers
from modeldeploy.operator import defaults as d
from modeldeploy.operator.builders import Owner
from modeldeploy.operator.desired import children
from modeldeploy.operator.kube import KINDS
from modeldeploy.operator.metrics import OperatorMetrics
from modeldeploy.operator.model import Actions, Slot, Spec, SpecError
from modeldeploy.operator.routers import (
    ROUTERS,
    ApiRequirement,
    ReplicaSplit,
    TrafficRouter,
    replica_split,
    router_for,
)
from modeldeploy.operator.routers.base import Strategy
from modeldeploy.operator.runtime import Config, Runtime

OWNER = Owner(name="iris", namespace="ml", uid="1234")
CANARY = {"canary": {"steps": [{"setWeight": 30}]}}
GATEWAY = {"gatewayAPI": {"httpRoute": "iris-route"}}
ISTIO = {"istio": {"virtualService": "iris-vs"}}
TRAEFIK = {"traefik": {"traefikService": "iris-ts"}}
PROVIDERS = {
    "replicas": {"replicas": {}},
    "gatewayAPI": GATEWAY,
    "istio": ISTIO,
    "traefik": TRAEFIK,
}


def canary(weight: int, stable: Slot = "blue", candidate: Slot = "green") -> Actions:
    return Actions(stable_slot=stable, candidate_slot=candidate, weight=weight)


WEIGHTS = [0, 25, 33, 50, 67, 100]
# canary (stable, candidate) replicas for WEIGHTS, by total replicas
POD_SHARE = {
    1: [(1, 0), (1, 1), (1, 1), (1, 1), (1, 1), (0, 1)],
    2: [(2, 0), (2, 1), (2, 1), (1, 1), (1, 2), (0, 2)],
    4: [(4, 0), (3, 1), (3, 2), (2, 2), (2, 3), (0, 4)],
    10: [(10, 0), (8, 3), (7, 4), (5, 5), (4, 7), (0, 10)],
}
ROUTED = {
    1: [(1, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 1)],
    2: [(2, 1), (2, 1), (2, 1), (2, 1), (2, 2), (2, 2)],
    4: [(4, 1), (4, 1), (4, 2), (4, 2), (4, 3), (4, 4)],
    10: [(10, 1), (10, 3), (10, 4), (10, 5), (10, 7), (10, 10)],
}
CANARY_TABLE = {"replicas": POD_SHARE, "gatewayAPI": ROUTED, "istio": ROUTED, "traefik": ROUTED}


@pytest.mark.parametrize("name", sorted(ROUTERS))
@pytest.mark.parametrize("total", sorted(POD_SHARE))
def test_canary_replica_split(name: str, total: int) -> None:
    router = ROUTERS[name]
    got = [router.replicas(total, "canary", w, True) for w in WEIGHTS]
    assert got == CANARY_TABLE[name][total]
    assert all(isinstance(s, ReplicaSplit) for s in got)


@pytest.mark.parametrize("name", sorted(ROUTERS))
@pytest.mark.parametrize("strategy", ["blueGreen", "shadow"])
@pytest.mark.parametrize("total", sorted(POD_SHARE))
def test_blue_green_and_shadow_run_a_full_size_candidate(
    name: str, strategy: Strategy, total: int
) -> None:
    router = ROUTERS[name]
    assert [router.replicas(total, strategy, w, True) for w in WEIGHTS] == [(total, total)] * 6


@pytest.mark.parametrize("name", sorted(ROUTERS))
@pytest.mark.parametrize("strategy", ["canary", "blueGreen", "shadow"])
def test_no_candidate_runs_no_candidate_pods(name: str, strategy: Strategy) -> None:
    for total in POD_SHARE:
        for w in WEIGHTS:
            assert ROUTERS[name].replicas(total, strategy, w, False) == (total, 0)


def test_replica_split_is_the_spec_routers_split() -> None:
    strategies: list[dict[str, Any]] = [CANARY, {"blueGreen": {}}, {"shadow": {}}]
    for provider in PROVIDERS.values():
        for strategy in strategies:
            sp = spec(strategy=strategy, provider=provider, replicas=4)
            router = router_for(sp)
            for w in WEIGHTS:
                for with_candidate in (True, False):
                    expected = router.replicas(4, sp.strategy, w, with_candidate)
                    assert replica_split(sp, w, with_candidate) == expected


def test_replicas_split_is_approximate_routes_are_exact() -> None:
    """With pod shares, 2 replicas cannot say 25%: the candidate gets one pod of three."""
    assert ROUTERS["replicas"].exact_split is False
    for name in ("gatewayAPI", "istio", "traefik"):
        assert ROUTERS[name].exact_split is True
    stable, candidate = ROUTERS["replicas"].replicas(2, "canary", 25, True)
    assert candidate / (stable + candidate) == pytest.approx(1 / 3)


def test_which_routers_mirror() -> None:
    assert {n: r.can_mirror for n, r in ROUTERS.items()} == {
        "replicas": False,
        "gatewayAPI": True,
        "istio": True,
        "traefik": True,
    }


def test_required_apis_and_the_message_when_missing() -> None:
    assert ROUTERS["replicas"].required_api is None
    assert ROUTERS["gatewayAPI"].required_api == ApiRequirement(
        "gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute"
    )
    assert ROUTERS["istio"].required_api == ApiRequirement(
        "networking.istio.io", "v1beta1", "virtualservices", "VirtualService"
    )
    assert ROUTERS["traefik"].required_api == ApiRequirement(
        "traefik.io", "v1alpha1", "traefikservices", "TraefikService"
    )
    assert ApiRequirement("g.io", "v1", "things", "Thing").missing_message("x") == (
        "trafficProvider x needs g.io/v1 things, which this cluster does not serve"
    )


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_objects_are_of_the_required_api(name: str) -> None:
    router = ROUTERS[name]
    sp = spec(strategy=CANARY, provider=PROVIDERS[name])
    objs = router.objects(OWNER, sp, canary(30))
    api = router.required_api
    if api is None:
        assert objs == []
    else:
        assert [(o["apiVersion"], o["kind"]) for o in objs] == [(api.api_version, api.kind)]


def test_every_required_api_is_a_kind_the_client_knows() -> None:
    for router in ROUTERS.values():
        api = router.required_api
        if api is not None:
            kind = KINDS[api.kind]
            assert (kind.api_version, kind.plural) == (api.api_version, api.plural)
            # and a child kind the operator indexes, so a deleted or edited object is repaired
            assert (api.group, api.version, api.plural, api.kind) in converge.CHILD_KINDS


@pytest.mark.parametrize(
    ("strategy", "both"), [("canary", True), ("blueGreen", False), ("shadow", False)]
)
def test_main_service_selector(strategy: Strategy, both: bool) -> None:
    stable_only = {d.LABEL_NAME: "iris", d.LABEL_SLOT: "green"}
    got = ROUTERS["replicas"].main_service_selector(OWNER, strategy, "green")
    assert got == ({d.LABEL_NAME: "iris"} if both else stable_only)
    for name in ("gatewayAPI", "istio", "traefik"):
        assert ROUTERS[name].main_service_selector(OWNER, strategy, "green") == stable_only


@pytest.mark.parametrize("provider", [{"replicas": {}}, GATEWAY, ISTIO, TRAEFIK])
def test_router_for_each_provider(provider: dict[str, Any]) -> None:
    (name,) = provider
    assert router_for(spec(provider=provider)).name == name
    assert router_for(spec(provider=provider)) is ROUTERS[name]


def test_router_for_an_unknown_provider_says_which_exist() -> None:
    sp = replace(spec(), provider=cast(Any, "linkerd"))
    with pytest.raises(
        SpecError,
        match=r"unknown trafficProvider 'linkerd' \(known: "
        r"gatewayAPI, istio, replicas, traefik\)",
    ):
        router_for(sp)


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_every_router_implements_the_protocol(name: str) -> None:
    router = ROUTERS[name]
    assert isinstance(router, TrafficRouter)  # members present; mypy checks the signatures
    assert router.name == name
    assert isinstance(router.can_mirror, bool) and isinstance(router.exact_split, bool)
    assert router.required_api is None or isinstance(router.required_api, ApiRequirement)


# --- the handler: a missing API leaves out exactly the router's objects ------------------


class FakeKube:
    def __init__(self, apis: set[tuple[str, str, str]]) -> None:
        self.apis = apis
        self.applied: list[dict[str, Any]] = []

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(obj)
        return obj

    async def has_api(self, group: str, version: str, plural: str) -> bool:
        return (group, version, plural) in self.apis


def _apply(kube: FakeKube, sp: Spec, actions: Actions, rt: Runtime | None = None) -> Runtime:
    rt = rt or Runtime(config=Config(), kube=cast(Any, kube), metrics=OperatorMetrics.create())
    body = kopf.Body({"metadata": {"name": "iris", "namespace": "ml", "uid": "1234"}})
    asyncio.run(handlers.apply_children(rt, body, sp, actions, None))
    return rt


@pytest.mark.parametrize("provider", [GATEWAY, ISTIO, TRAEFIK])
def test_missing_router_api_drops_its_objects_and_warns_once(
    provider: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "warn", lambda body, **kw: warnings.append(kw))
    sp = spec(strategy=CANARY, provider=provider)
    actions = canary(30)
    kube = FakeKube(set())
    rt = _apply(kube, sp, actions)
    everything = children(OWNER, sp, actions, with_rule=False)
    router_objs = router_for(sp).objects(OWNER, sp, actions)
    assert kube.applied == [o for o in everything if o not in router_objs]
    assert len(router_objs) == 1 and len(kube.applied) == len(everything) - 1
    api = router_for(sp).required_api
    assert api is not None
    assert warnings == [{"reason": "ProviderMissing", "message": api.missing_message(sp.provider)}]
    _apply(kube, sp, canary(50), rt)
    assert len(warnings) == 1, "warned once per ModelDeployment"
    # once the API is there, the route is applied too
    kube.apis.add((api.group, api.version, api.plural))
    _apply(kube, sp, canary(60), rt)
    assert kube.applied[-1] == router_for(sp).objects(OWNER, sp, canary(60))[0]


def test_a_canary_step_writes_only_the_children_it_changes() -> None:
    """At 500 ModelDeployments mid-rollout, writing every child at every step queued the
    rollbacks behind routine writes: only what changed (or went missing) is written."""
    sp = spec(strategy=CANARY, provider=GATEWAY)
    api = router_for(sp).required_api
    assert api is not None
    kube = FakeKube({(api.group, api.version, api.plural)})
    rt = Runtime(config=Config(), kube=cast(Any, kube), metrics=OperatorMetrics.create())
    body = kopf.Body({"metadata": {"name": "iris", "namespace": "ml", "uid": "1234"}})

    def step(actions: Actions, seen: converge.Markers) -> list[dict[str, Any]]:
        kube.applied.clear()
        asyncio.run(handlers.apply_children(rt, body, sp, actions, seen))
        return list(kube.applied)

    first = children(OWNER, sp, canary(30), with_rule=False)
    watched = {converge.child_key(o): converge.marker(o["metadata"]) for o in first}
    assert step(canary(30), {}) == first, "nothing there yet: everything, in order"
    assert step(canary(30), watched) == [], "unchanged"
    second = children(OWNER, sp, canary(50), with_rule=False)
    changed = [o for o in second if o not in first]
    assert changed and len(changed) < len(second)
    assert step(canary(50), watched) == changed
    gone = dict(watched)
    del gone[converge.child_key(second[0])]
    assert step(canary(50), gone) == [second[0]], "a deleted child is restored alone"


def test_replicas_needs_no_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kopf, "warn", lambda body, **kw: pytest.fail("warned"))
    kube = FakeKube(set())
    sp = spec(strategy=CANARY)
    _apply(kube, sp, canary(30))
    assert kube.applied == children(OWNER, sp, canary(30), with_rule=False)

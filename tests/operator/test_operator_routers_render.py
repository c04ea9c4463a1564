"""What each traffic provider renders: routes, mirrors and Services, byte for byte.

The expected objects are written out in full (not rebuilt through the builders), so a change
in what a router renders shows here. The routers' own contract is in test_operator_routers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from opworld import spec

from modeldeploy.operator import defaults as d
from modeldeploy.operator.builders import Owner, services
from modeldeploy.operator.desired import children
from modeldeploy.operator.model import Actions, Slot, Spec

OWNER = Owner(name="iris", namespace="ml", uid="1234")
PORT = 8080
CANARY = {"canary": {"steps": [{"setWeight": 30}]}}
GATEWAY = {
    "gatewayAPI": {
        "httpRoute": "iris-route",
        "parentRefs": [{"name": "gw"}],
        "hostnames": ["iris.example"],
    }
}
ISTIO = {
    "istio": {"virtualService": "iris-vs", "hosts": ["iris.example"], "gateways": ["mesh", "gw"]}
}


def expected_metadata(name: str, component: str, **labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "ml",
        "labels": {
            "app.kubernetes.io/name": "iris",
            "app.kubernetes.io/part-of": "modeldeploy",
            "app.kubernetes.io/managed-by": "modeldeploy",
            "app.kubernetes.io/component": component,
            "modeldeploy.io/name": "iris",
            **labels,
        },
        "ownerReferences": [
            {
                "apiVersion": "modeldeploy.io/v1alpha1",
                "kind": "ModelDeployment",
                "name": "iris",
                "uid": "1234",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def canary(weight: int, stable: Slot = "blue", candidate: Slot = "green") -> Actions:
    """A rollout whose candidate has Ready pods (a blue/green preview then selects it)."""
    return Actions(
        stable_slot=stable, candidate_slot=candidate, weight=weight, candidate_ready=True
    )


def shadow() -> Actions:
    return Actions(stable_slot="blue", candidate_slot="green", mirror=True)


def traffic(sp: Spec, actions: Actions) -> list[dict[str, Any]]:
    """The objects that are neither Deployments nor Services (the rule left out)."""
    return [
        o
        for o in children(OWNER, sp, actions, with_rule=False)
        if o["kind"] not in ("Deployment", "Service")
    ]


def http_route(backends: list[tuple[str, int]], **rule: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": expected_metadata("iris-route", "traffic"),
        "spec": {
            "rules": [
                {
                    "backendRefs": [{"name": n, "port": PORT, "weight": w} for n, w in backends],
                    **rule,
                }
            ],
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["iris.example"],
        },
    }


def virtual_service(backends: list[tuple[str, int]], **route: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": expected_metadata("iris-vs", "traffic"),
        "spec": {
            "hosts": ["iris.example"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": n, "port": {"number": PORT}}, "weight": w}
                        for n, w in backends
                    ],
                    **route,
                }
            ],
            "gateways": ["mesh", "gw"],
        },
    }


@pytest.mark.parametrize("weight", [0, 25, 33, 50, 67, 100])
def test_gateway_api_canary_weights(weight: int) -> None:
    sp = spec(strategy=CANARY, provider=GATEWAY)
    assert traffic(sp, canary(weight)) == [
        http_route([("iris-blue", 100 - weight), ("iris-green", weight)])
    ]


@pytest.mark.parametrize("weight", [0, 25, 33, 50, 67, 100])
def test_istio_canary_weights(weight: int) -> None:
    sp = spec(strategy=CANARY, provider=ISTIO)
    assert traffic(sp, canary(weight)) == [
        virtual_service([("iris-blue", 100 - weight), ("iris-green", weight)])
    ]


@pytest.mark.parametrize("provider", [GATEWAY, ISTIO])
def test_routes_without_a_candidate_send_everything_to_the_stable(provider: dict[str, Any]) -> None:
    sp = spec(strategy=CANARY, provider=provider)
    expected = (http_route if "gatewayAPI" in provider else virtual_service)([("iris-green", 100)])
    assert traffic(sp, Actions(stable_slot="green")) == [expected]
    # no stable slot yet: blue is the first one
    first = (http_route if "gatewayAPI" in provider else virtual_service)([("iris-blue", 100)])
    assert traffic(sp, Actions()) == [first]


@pytest.mark.parametrize("provider", [GATEWAY, ISTIO])
def test_blue_green_switch(provider: dict[str, Any]) -> None:
    sp = spec(strategy={"blueGreen": {}}, provider=provider)
    build = http_route if "gatewayAPI" in provider else virtual_service
    before = traffic(sp, canary(0))
    after = traffic(sp, canary(0, stable="green", candidate="blue"))
    assert before == [build([("iris-blue", 100), ("iris-green", 0)])]
    assert after == [build([("iris-green", 100), ("iris-blue", 0)])]


def test_gateway_api_shadow_mirrors_to_the_candidate() -> None:
    sp = spec(strategy={"shadow": {}}, provider=GATEWAY)
    mirror = {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": {"name": "iris-green", "port": PORT}},
    }
    assert traffic(sp, shadow()) == [http_route([("iris-blue", 100)], filters=[mirror])]


def test_istio_shadow_mirrors_to_the_candidate() -> None:
    sp = spec(strategy={"shadow": {}}, provider=ISTIO)
    assert traffic(sp, shadow()) == [
        virtual_service(
            [("iris-blue", 100)],
            mirror={"host": "iris-green", "port": {"number": PORT}},
            mirrorPercentage={"value": 100.0},
        )
    ]


def test_minimal_provider_specs() -> None:
    sp = spec(strategy=CANARY, provider={"gatewayAPI": {"httpRoute": "r"}})
    assert traffic(sp, canary(10))[0]["spec"] == {
        "rules": [
            {
                "backendRefs": [
                    {"name": "iris-blue", "port": PORT, "weight": 90},
                    {"name": "iris-green", "port": PORT, "weight": 10},
                ]
            }
        ]
    }
    sp = spec(strategy=CANARY, provider={"istio": {"virtualService": "v"}})
    assert traffic(sp, canary(10))[0]["spec"] == {
        "hosts": ["iris"],
        "http": [
            {
                "route": [
                    {"destination": {"host": "iris-blue", "port": {"number": PORT}}, "weight": 90},
                    {"destination": {"host": "iris-green", "port": {"number": PORT}}, "weight": 10},
                ]
            }
        ],
    }


@pytest.mark.parametrize("strategy", [CANARY, {"blueGreen": {}}, {"shadow": {}}])
def test_replicas_renders_no_traffic_objects(strategy: dict[str, Any]) -> None:
    sp = spec(strategy=strategy)
    assert traffic(sp, canary(30)) == []
    assert traffic(sp, shadow()) == []


def _peers() -> dict[str, Any]:
    """Headless, over every pod of both slots: where the servers forward labels."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": expected_metadata(
            "iris-peers", "model-service", **{"modeldeploy.io/service": "peers"}
        ),
        "spec": {
            "clusterIP": "None",
            "selector": {d.LABEL_NAME: "iris"},
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _service(name: str, role: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": expected_metadata(name, "model-service", **{"modeldeploy.io/service": role}),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


@pytest.mark.parametrize("strategy", ["canary", "blueGreen", "shadow"])
@pytest.mark.parametrize("provider", ["replicas", "gatewayAPI", "istio", "traefik"])
def test_services(strategy: str, provider: str) -> None:
    cfg = {
        "replicas": {},
        "gatewayAPI": GATEWAY["gatewayAPI"],
        "istio": ISTIO["istio"],
        "traefik": {"traefikService": "iris-ts"},
    }
    sp = spec(strategy={strategy: {}}, provider={provider: cfg[provider]})
    both = {d.LABEL_NAME: "iris"}
    green = {d.LABEL_NAME: "iris", d.LABEL_SLOT: "green"}
    blue = {d.LABEL_NAME: "iris", d.LABEL_SLOT: "blue"}
    main = both if provider == "replicas" and strategy == "canary" else green
    second = "iris-preview" if strategy == "blueGreen" else "iris-canary"
    assert services(OWNER, sp, canary(30, stable="green", candidate="blue")) == [
        _service("iris", "stable", main),
        _service(second, "candidate", blue),
        _service("iris-blue", "blue", blue),
        _service("iris-green", "green", green),
        _peers(),
    ]
    # no candidate: the candidate Service selects the stable
    assert services(OWNER, sp, Actions(stable_slot="green"))[1] == _service(
        second, "candidate", green
    )


def test_key_order_is_the_same_too() -> None:
    """Dicts compare equal in any order; the bytes a server-side apply sends do not."""
    mirror = {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": {"name": "iris-green", "port": PORT}},
    }
    cases = [
        (
            spec(strategy=CANARY, provider=GATEWAY),
            canary(25),
            http_route([("iris-blue", 75), ("iris-green", 25)]),
        ),
        (
            spec(strategy={"shadow": {}}, provider=GATEWAY),
            shadow(),
            http_route([("iris-blue", 100)], filters=[mirror]),
        ),
        (
            spec(strategy=CANARY, provider=ISTIO),
            canary(25),
            virtual_service([("iris-blue", 75), ("iris-green", 25)]),
        ),
        (
            spec(strategy={"shadow": {}}, provider=ISTIO),
            shadow(),
            virtual_service(
                [("iris-blue", 100)],
                mirror={"host": "iris-green", "port": {"number": PORT}},
                mirrorPercentage={"value": 100.0},
            ),
        ),
    ]
    for sp, actions, expected in cases:
        assert json.dumps(traffic(sp, actions)) == json.dumps([expected])
    sp = spec(strategy=CANARY)
    both = {d.LABEL_NAME: "iris"}
    blue = {d.LABEL_NAME: "iris", d.LABEL_SLOT: "blue"}
    green = {d.LABEL_NAME: "iris", d.LABEL_SLOT: "green"}
    assert json.dumps(services(OWNER, sp, canary(30))) == json.dumps(
        [
            _service("iris", "stable", both),
            _service("iris-canary", "candidate", green),
            _service("iris-blue", "blue", blue),
            _service("iris-green", "green", green),
            _peers(),
        ]
    )

"""The ``istio`` router: a VirtualService with weighted routes, ``mirror`` for shadow.

The VirtualService (``spec.trafficProvider.istio.virtualService``) serves the user's
``hosts`` (``NAME`` when none are given) through the optional ``gateways``; its
destinations are the slot Services ``NAME-blue`` and ``NAME-green``.
"""

from __future__ import annotations

from modeldeploy.operator.model import Actions, Json, Spec
from modeldeploy.operator.owned import Owner, metadata, slot_name
from modeldeploy.operator.routers.base import (
    ApiRequirement,
    RoutedRouter,
    route_backends,
)
from modeldeploy.server import contract as c

VIRTUAL_SERVICE_API = ApiRequirement(
    "networking.istio.io", "v1beta1", "virtualservices", "VirtualService"
)


def _port() -> Json:
    """A fresh dict each time: shared ones would become YAML anchors when dumped."""
    return {"number": c.DEFAULT_PORT}


def virtual_service(owner: Owner, spec: Spec, actions: Actions) -> Json:
    """Istio VirtualService: route weights, and ``mirror`` for shadow."""
    cfg = spec.provider_spec
    route: Json = {
        "route": [
            {"destination": {"host": n, "port": _port()}, "weight": w}
            for n, w in route_backends(owner, actions)
        ]
    }
    if actions.mirror and actions.candidate_slot:
        route["mirror"] = {"host": slot_name(owner.name, actions.candidate_slot), "port": _port()}
        route["mirrorPercentage"] = {"value": 100.0}
    vs_spec: Json = {"hosts": cfg.get("hosts") or [owner.name], "http": [route]}
    if cfg.get("gateways"):
        vs_spec["gateways"] = cfg["gateways"]
    return {
        "apiVersion": VIRTUAL_SERVICE_API.api_version,
        "kind": VIRTUAL_SERVICE_API.kind,
        "metadata": metadata(owner, cfg["virtualService"], "traffic"),
        "spec": vs_spec,
    }


class IstioRouter(RoutedRouter):
    """Exact weights through a VirtualService; mirrors for shadow."""

    name = "istio"
    required_api: ApiRequirement | None = VIRTUAL_SERVICE_API

    def objects(self, owner: Owner, spec: Spec, actions: Actions) -> list[Json]:
        return [virtual_service(owner, spec, actions)]


ROUTER = IstioRouter()

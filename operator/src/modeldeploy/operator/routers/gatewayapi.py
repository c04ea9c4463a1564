"""The ``gatewayAPI`` router: an HTTPRoute with weighted backends, RequestMirror for shadow.

The route (``spec.trafficProvider.gatewayAPI.httpRoute``) is attached to the user's
``parentRefs`` and ``hostnames``; its backends are the slot Services ``NAME-blue`` and
``NAME-green``, so the weight is exact whatever the number of pods.
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

HTTP_ROUTE_API = ApiRequirement("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")


def http_route(owner: Owner, spec: Spec, actions: Actions) -> Json:
    """Gateway API HTTPRoute: backend weights, and a RequestMirror filter for shadow."""
    cfg = spec.provider_spec
    rule: Json = {
        "backendRefs": [
            {"name": n, "port": c.DEFAULT_PORT, "weight": w}
            for n, w in route_backends(owner, actions)
        ]
    }
    if actions.mirror and actions.candidate_slot:
        mirror = {"name": slot_name(owner.name, actions.candidate_slot), "port": c.DEFAULT_PORT}
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": {"backendRef": mirror}}]
    route_spec: Json = {"rules": [rule]}
    if cfg.get("parentRefs"):
        route_spec["parentRefs"] = cfg["parentRefs"]
    if cfg.get("hostnames"):
        route_spec["hostnames"] = cfg["hostnames"]
    return {
        "apiVersion": HTTP_ROUTE_API.api_version,
        "kind": HTTP_ROUTE_API.kind,
        "metadata": metadata(owner, cfg["httpRoute"], "traffic"),
        "spec": route_spec,
    }


class GatewayApiRouter(RoutedRouter):
    """Exact weights through an HTTPRoute; mirrors for shadow."""

    name = "gatewayAPI"
    required_api: ApiRequirement | None = HTTP_ROUTE_API

    def objects(self, owner: Owner, spec: Spec, actions: Actions) -> list[Json]:
        return [http_route(owner, spec, actions)]


ROUTER = GatewayApiRouter()

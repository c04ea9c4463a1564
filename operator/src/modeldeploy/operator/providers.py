"""Traffic providers: which objects split (or mirror) traffic, and which API they need.

``replicas`` needs nothing beyond Services (the weight is the share of pods);
``gatewayAPI`` owns an HTTPRoute; ``istio`` owns a VirtualService. The handlers check
that the provider's API exists before applying and say so in an Event when it does not.
"""

from __future__ import annotations

from modeldeploy.operator.builders import Owner, http_route, virtual_service
from modeldeploy.operator.model import Actions, Json, Spec

# (group, version, plural) of the API each provider needs, None for none.
REQUIRED_API: dict[str, tuple[str, str, str] | None] = {
    "replicas": None,
    "gatewayAPI": ("gateway.networking.k8s.io", "v1", "httproutes"),
    "istio": ("networking.istio.io", "v1beta1", "virtualservices"),
}
PROMETHEUS_RULE_API = ("monitoring.coreos.com", "v1", "prometheusrules")


def traffic_objects(owner: Owner, spec: Spec, actions: Actions) -> list[Json]:
    if spec.provider == "gatewayAPI":
        return [http_route(owner, spec, actions)]
    if spec.provider == "istio":
        return [virtual_service(owner, spec, actions)]
    return []

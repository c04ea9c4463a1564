"""The ``traefik`` router: one TraefikService (traefik.io/v1alpha1), weighted or mirroring.

The TraefikService (``spec.trafficProvider.traefik.traefikService``) is what the user's
route names: an IngressRoute's service of ``kind: TraefikService``, or an HTTPRoute
backendRef with ``group: traefik.io, kind: TraefikService`` when Traefik runs both its CRD
and its Gateway API providers. The operator owns the TraefikService, the user owns the
route (as with Flagger's Traefik provider).

- canary and blue/green: ``weighted`` over the slot Services ``NAME-blue`` and
  ``NAME-green`` (the weight is exact, whatever the number of pods);
- shadow: ``mirroring``: the stable's Service answers every request and Traefik copies each
  one, body included (``mirrorBody`` defaults to true), to the candidate's at 100%; the
  copies' answers are discarded.

Traefik builds a TraefikService only when every Kubernetes Service it names has a Serving
endpoint (unless Traefik runs with ``allowEmptyServices``): one empty Service drops the whole
TraefikService and the route that names it answers 404. So a backend at weight 0 is left
out (the engine gives the candidate weight only once it has Ready pods for it, and the
routed stable stays whole), and the mirror is named only once the shadow has a Ready pod;
until then the TraefikService sends everything to the stable.
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

TRAEFIK_SERVICE_API = ApiRequirement("traefik.io", "v1alpha1", "traefikservices", "TraefikService")


def traefik_service_spec(owner: Owner, actions: Actions) -> Json:
    """``weighted`` over the backends that get requests, or ``mirroring`` for a Ready shadow."""
    stable = slot_name(owner.name, actions.stable_slot or "blue")
    if actions.mirror and actions.candidate_slot and actions.candidate_ready:
        shadow = slot_name(owner.name, actions.candidate_slot)
        return {
            "mirroring": {
                "name": stable,
                "port": c.DEFAULT_PORT,
                "mirrors": [{"name": shadow, "port": c.DEFAULT_PORT, "percent": 100}],
            }
        }
    services = [
        {"name": n, "port": c.DEFAULT_PORT, "weight": w}
        for n, w in route_backends(owner, actions)
        if w > 0
    ]
    return {"weighted": {"services": services}}


def traefik_service(owner: Owner, spec: Spec, actions: Actions) -> Json:
    cfg = spec.provider_spec
    return {
        "apiVersion": TRAEFIK_SERVICE_API.api_version,
        "kind": TRAEFIK_SERVICE_API.kind,
        "metadata": metadata(owner, cfg["traefikService"], "traffic"),
        "spec": traefik_service_spec(owner, actions),
    }


class TraefikRouter(RoutedRouter):
    """Exact weights through a weighted TraefikService; a mirroring one for shadow."""

    name = "traefik"
    required_api: ApiRequirement | None = TRAEFIK_SERVICE_API

    def objects(self, owner: Owner, spec: Spec, actions: Actions) -> list[Json]:
        return [traefik_service(owner, spec, actions)]


ROUTER = TraefikRouter()

"""Traffic routers: how a candidate weight becomes replica counts and routing objects.

One module per provider, each implementing ``TrafficRouter`` (``base``): ``replicas``
(weight by pod share, no dependencies), ``gatewayAPI`` (HTTPRoute), ``istio``
(VirtualService) and ``traefik`` (TraefikService). ``router_for(spec)`` picks the one
``spec.trafficProvider`` names.
"""

from __future__ import annotations

from modeldeploy.operator.model import Spec, SpecError
from modeldeploy.operator.routers import gatewayapi, istio, replicas, traefik
from modeldeploy.operator.routers.base import (
    ApiRequirement,
    Backend,
    ReplicaSplit,
    TrafficRouter,
)

__all__ = [
    "ROUTERS",
    "ApiRequirement",
    "Backend",
    "ReplicaSplit",
    "TrafficRouter",
    "replica_split",
    "router_for",
]

# Typed as the protocol: mypy checks that each module's router implements it.
_ALL: tuple[TrafficRouter, ...] = (
    replicas.ROUTER,
    gatewayapi.ROUTER,
    istio.ROUTER,
    traefik.ROUTER,
)
ROUTERS: dict[str, TrafficRouter] = {r.name: r for r in _ALL}


def router_for(spec: Spec) -> TrafficRouter:
    """The router of ``spec.trafficProvider``; SpecError for a provider none implements."""
    try:
        return ROUTERS[spec.provider]
    except KeyError:
        known = ", ".join(sorted(ROUTERS))
        raise SpecError(f"unknown trafficProvider {spec.provider!r} (known: {known})") from None


def replica_split(spec: Spec, weight: int, with_candidate: bool) -> tuple[int, int]:
    """(stable, candidate) replica counts for a candidate weight: the spec's router decides.

    With ``replicas`` the weight *is* the share of pods behind the one Service, so the
    candidate gets ceil(R*w/100) pods and the stable gives up floor(R*w/100). Routed
    providers keep the stable whole and give the candidate at least one warm pod (it is
    ready-checked and analysed before it gets traffic). Blue/green and shadow run a
    full-size candidate.
    """
    return router_for(spec).replicas(spec.replicas, spec.strategy, weight, with_candidate)

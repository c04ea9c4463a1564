"""The ``replicas`` router: no dependencies; the weight is the share of pods.

For a canary the main Service ``NAME`` selects both slots, so a request reaches the
candidate with the probability of its share of ready pods: ceil(R*w/100) candidate pods
against R - floor(R*w/100) stable ones. The split is approximate (kube-proxy balances
connections, not requests, and 2 replicas cannot express 33%) and the router says so
(``exact_split`` is False). It renders no objects and needs no API.

It cannot mirror. The CRD refuses ``shadow`` with ``replicas`` (a CEL rule); a shadow
spec that got past it anyway runs a full-size candidate that the main Service does not
select: the candidate gets no copies of the requests, only what is sent to
``NAME-canary`` directly.
"""

from __future__ import annotations

import math

from modeldeploy.operator.model import Actions, Json, Spec
from modeldeploy.operator.owned import Owner, selector
from modeldeploy.operator.routers.base import ApiRequirement, ReplicaSplit, Strategy, whole_slots


class ReplicasRouter:
    """Weight by pod share behind one Service."""

    name = "replicas"
    required_api: ApiRequirement | None = None
    can_mirror = False
    exact_split = False

    def replicas(
        self, total: int, strategy: Strategy, weight: int, with_candidate: bool
    ) -> ReplicaSplit:
        whole = whole_slots(total, strategy, with_candidate)
        if whole is not None:
            return whole
        return ReplicaSplit(total - (total * weight) // 100, math.ceil(total * weight / 100))

    def main_service_selector(
        self, owner: Owner, strategy: Strategy, stable: str
    ) -> dict[str, str]:
        """A canary's Service selects both slots; otherwise only the stable."""
        return selector(owner) if strategy == "canary" else selector(owner, stable)

    def objects(self, owner: Owner, spec: Spec, actions: Actions) -> list[Json]:
        return []


ROUTER = ReplicasRouter()

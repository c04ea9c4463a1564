"""The traffic router protocol, its value types, and the parts the routed providers share.

A router is what ``spec.trafficProvider`` names. It says which API it needs (and how its
absence is reported), how many replicas each slot runs for a candidate weight, which slots
the main Service selects, which objects it renders to split or mirror traffic, and whether
it can mirror at all. Routers are pure: they read no cluster; the handlers check the API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from modeldeploy.operator.model import Actions, Json, Spec
from modeldeploy.operator.owned import Owner, selector, slot_name

Strategy = Literal["canary", "blueGreen", "shadow"]


@dataclass(frozen=True)
class ApiRequirement:
    """A Kubernetes API a router's objects need: discovery must list ``plural`` in
    group/version for them to be applied."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def missing_message(self, provider: str) -> str:
        """What the Warning event says when the cluster does not serve this API."""
        return (
            f"trafficProvider {provider} needs {self.group}/{self.version} {self.plural}, "
            "which this cluster does not serve"
        )


class ReplicaSplit(NamedTuple):
    """Replica counts of the stable and the candidate slot (a tuple: unpacks as one)."""

    stable: int
    candidate: int


class Backend(NamedTuple):
    """One weighted backend of a route: a slot's Service and its percent of requests."""

    service: str
    weight: int


@runtime_checkable
class TrafficRouter(Protocol):
    """How one traffic provider turns the engine's actions into traffic."""

    @property
    def name(self) -> str:
        """The key under ``spec.trafficProvider``."""
        ...

    @property
    def required_api(self) -> ApiRequirement | None:
        """The API its objects need, None when it needs nothing beyond Services."""
        ...

    @property
    def can_mirror(self) -> bool:
        """Whether it copies requests to a shadow candidate."""
        ...

    @property
    def exact_split(self) -> bool:
        """True when requests follow the weight exactly (a route); False when the weight
        is approximated by the share of pods behind one Service."""
        ...

    def replicas(
        self, total: int, strategy: Strategy, weight: int, with_candidate: bool
    ) -> ReplicaSplit:
        """(stable, candidate) replica counts for a candidate weight in percent."""
        ...

    def main_service_selector(
        self, owner: Owner, strategy: Strategy, stable: str
    ) -> dict[str, str]:
        """The selector of Service ``NAME``, the one clients call."""
        ...

    def objects(self, owner: Owner, spec: Spec, actions: Actions) -> list[Json]:
        """The objects that split (or mirror) traffic; applied after Deployments and
        Services."""
        ...


def whole_slots(total: int, strategy: Strategy, with_candidate: bool) -> ReplicaSplit | None:
    """The split every router shares, None for a canary with a candidate: no candidate
    runs nothing; blue/green and shadow run a full-size candidate."""
    if not with_candidate:
        return ReplicaSplit(total, 0)
    if strategy != "canary":
        return ReplicaSplit(total, total)
    return None


class RoutedRouter:
    """What the routed providers share: a route moves the requests, so the stable stays
    whole and a canary candidate gets its share of pods, at least one warm pod (it is
    ready-checked and analysed before it gets traffic); the main Service selects the
    stable only. Subclasses name the API and render the route."""

    can_mirror = True
    exact_split = True

    def replicas(
        self, total: int, strategy: Strategy, weight: int, with_candidate: bool
    ) -> ReplicaSplit:
        whole = whole_slots(total, strategy, with_candidate)
        if whole is not None:
            return whole
        return ReplicaSplit(total, max(1, math.ceil(total * weight / 100)))

    def main_service_selector(
        self, owner: Owner, strategy: Strategy, stable: str
    ) -> dict[str, str]:
        return selector(owner, stable)


def route_backends(owner: Owner, actions: Actions) -> list[Backend]:
    """A route's weighted backends: the stable slot alone when there is no candidate or
    the candidate is a shadow (it only gets copies), else stable and candidate."""
    stable = slot_name(owner.name, actions.stable_slot or "blue")
    if not actions.candidate_slot or actions.mirror:
        return [Backend(stable, 100)]
    cand = slot_name(owner.name, actions.candidate_slot)
    return [Backend(stable, 100 - actions.weight), Backend(cand, actions.weight)]

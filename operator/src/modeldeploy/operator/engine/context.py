"""One reconcile's inputs and working state, shared by the engine's modules.

The status here is the engine's own copy: the caller's value is never modified, which is
what lets a test (or a crashed operator) run the same decision twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from modeldeploy.operator.engine.status import RolloutStatus, second
from modeldeploy.operator.engine.strategy import Strategy
from modeldeploy.operator.model import Event, Observations, Spec, Step
from modeldeploy.operator.routers import replica_split


@dataclass
class Context:
    spec: Spec
    st: RolloutStatus
    obs: Observations
    now: datetime
    strategy: Strategy
    plan: list[Step]
    events: list[Event] = field(default_factory=list)

    @property
    def stamp(self) -> datetime:
        """``now`` as the status stores it."""
        return second(self.now)

    def event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def since(self, at: datetime | None) -> float:
        """Seconds since ``at``; never recorded is "long ago"."""
        return math.inf if at is None else (self.now - at).total_seconds()

    @property
    def index(self) -> int:
        """The current step, clamped: a spec edited to fewer steps resumes at its last."""
        return min(self.st.current_step, len(self.plan) - 1)

    @property
    def step(self) -> Step | None:
        return self.plan[self.index] if self.st.active else None

    def candidate_serves(self) -> bool:
        slot = self.st.candidate_slot
        if slot is None:
            return False
        replicas = replica_split(self.spec, self.st.canary_weight, True)[1]
        return self.obs.slot(slot).serves(self.st.candidate_revision, replicas)

    def stable_serves(self) -> bool:
        if self.st.stable_slot is None:
            return False
        stable = replica_split(self.spec, self.st.canary_weight, self.st.active)[0]
        if self.st.promoted:
            stable = self.spec.replicas
        return self.obs.slot(self.st.stable_slot).serves(self.st.stable_revision, stable)

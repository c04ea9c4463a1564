"""What a rollout strategy decides, and which strategy a spec asks for.

The steps are one vocabulary (``model.Step``) and the step machine (``rollout``) is shared:
a strategy is its schedule, read from its own section of the spec, and how the candidate
gets traffic. That keeps a fourth strategy one module, and each schedule testable alone.
"""

from __future__ import annotations

from typing import Protocol

from modeldeploy.operator.engine.bluegreen import BLUE_GREEN
from modeldeploy.operator.engine.canary import CANARY
from modeldeploy.operator.engine.shadow import SHADOW
from modeldeploy.operator.model import Spec, SpecError, Step


class Strategy(Protocol):
    @property
    def name(self) -> str:
        """The key under ``spec.strategy``."""
        ...

    def plan(self, spec: Spec) -> list[Step]:
        """The steps; ``status.currentStep`` indexes them, so the list must be a pure
        function of the spec (a restart recomputes it)."""
        ...

    def traffic(self, weight: int) -> tuple[int, bool]:
        """(percent of live traffic, mirrored?) for the candidate while it is a candidate."""
        ...


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (CANARY, BLUE_GREEN, SHADOW)}


def strategy_of(spec: Spec) -> Strategy:
    try:
        return STRATEGIES[spec.strategy]
    except KeyError:
        raise SpecError(f"unknown strategy {spec.strategy!r}") from None


def plan(spec: Spec) -> list[Step]:
    """The rollout of ``spec`` as a list of steps."""
    return strategy_of(spec).plan(spec)

"""Canary: the user's weight, pause and analysis steps, then full weight and promotion.

The user's steps come first, so ``currentStep`` is the user's step number; the weight of
``replicas``-routed traffic is a share of pods (see ``routers.replica_split``).
"""

from __future__ import annotations

from dataclasses import dataclass

from modeldeploy.operator import defaults as d
from modeldeploy.operator.model import (
    Analysis,
    Json,
    Pause,
    Promote,
    ScaleDownPrevious,
    SetWeight,
    Spec,
    SpecError,
    Step,
    parse_duration,
)


def user_step(raw: Json) -> Step:
    if "setWeight" in raw:
        return SetWeight(int(raw["setWeight"]))
    if "pause" in raw:
        duration = (raw["pause"] or {}).get("duration")
        return Pause(None if duration is None else parse_duration(duration))
    if "analysis" in raw:
        return Analysis(
            parse_duration((raw["analysis"] or {}).get("duration", d.STEP_ANALYSIS_DURATION))
        )
    raise SpecError(f"unknown canary step {raw!r}")


@dataclass(frozen=True)
class Canary:
    name: str = "canary"

    def plan(self, spec: Spec) -> list[Step]:
        steps = [user_step(raw) for raw in spec.strategy_spec.get("steps") or []]
        # The previous slot goes at once: at 100% it no longer takes traffic.
        return [*steps, SetWeight(100), Promote(), ScaleDownPrevious(0.0)]

    def traffic(self, weight: int) -> tuple[int, bool]:
        return weight, False


CANARY = Canary()

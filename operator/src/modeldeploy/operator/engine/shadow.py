"""Shadow: the candidate gets a mirrored copy of live traffic; its answers are only compared.

No user ever gets a shadow's answer, so the analysis (prediction divergence above all)
decides alone; without ``autoPromote`` a person promotes after it passed.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeldeploy.operator import defaults as d
from modeldeploy.operator.model import (
    Analysis,
    Pause,
    Promote,
    ScaleDownPrevious,
    Spec,
    Step,
    WaitReady,
    parse_duration,
)


@dataclass(frozen=True)
class Shadow:
    name: str = "shadow"

    def plan(self, spec: Spec) -> list[Step]:
        s = spec.strategy_spec
        steps: list[Step] = [
            WaitReady(),
            Analysis(parse_duration(s.get("duration", d.SHADOW_DURATION))),
        ]
        if not s.get("autoPromote", d.SHADOW_AUTO_PROMOTE):
            steps.append(Pause(None))
        return [*steps, Promote(), ScaleDownPrevious(0.0)]

    def traffic(self, weight: int) -> tuple[int, bool]:
        return 0, True


SHADOW = Shadow()

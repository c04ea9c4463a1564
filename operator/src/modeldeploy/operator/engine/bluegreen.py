"""Blue/green: a full-size candidate behind the preview Service, switched to at once.

Pre-promotion analysis watches the candidate before the switch, post-promotion analysis
watches it as the new stable while the previous slot is still up, so a failure switches
back without waiting for pods; the previous slot is scaled down after a delay.
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
class BlueGreen:
    name: str = "blueGreen"

    def plan(self, spec: Spec) -> list[Step]:
        s = spec.strategy_spec
        steps: list[Step] = [WaitReady()]
        if "prePromotionAnalysis" in s:
            steps.append(
                Analysis(
                    parse_duration(
                        s["prePromotionAnalysis"].get("duration", d.STEP_ANALYSIS_DURATION)
                    )
                )
            )
        if s.get("autoPromotionEnabled", d.AUTO_PROMOTION_ENABLED):
            steps.append(Pause(float(s.get("autoPromotionSeconds", d.AUTO_PROMOTION_SECONDS))))
        else:
            steps.append(Pause(None))
        steps.append(Promote())
        if "postPromotionAnalysis" in s:
            steps.append(
                Analysis(
                    parse_duration(
                        s["postPromotionAnalysis"].get("duration", d.STEP_ANALYSIS_DURATION)
                    ),
                    role=d.ROLE_STABLE,
                )
            )
        steps.append(
            ScaleDownPrevious(float(s.get("scaleDownDelaySeconds", d.SCALE_DOWN_DELAY_SECONDS)))
        )
        return steps

    def traffic(self, weight: int) -> tuple[int, bool]:
        # Only the preview Service reaches the candidate until the switch.
        return 0, False


BLUE_GREEN = BlueGreen()

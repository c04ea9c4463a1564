"""Traffic routers: how a candidate weight becomes replica counts and routing objects."""

from __future__ import annotations

import math

from modeldeploy.operator.model import Spec


def replica_split(spec: Spec, weight: int, with_candidate: bool) -> tuple[int, int]:
    """(stable, candidate) replica counts for a candidate weight.

    The ``replicas`` provider has no router: the weight *is* the share of pods behind the
    one Service, so the candidate gets ceil(R*w/100) pods and the stable gives up
    floor(R*w/100). Routed providers keep the stable whole and give the candidate at least
    one warm pod (it is ready-checked and analysed before it gets traffic). Blue/green and
    shadow run a full-size candidate.
    """
    total = spec.replicas
    if not with_candidate:
        return total, 0
    if spec.strategy != "canary":
        return total, total
    if spec.provider == "replicas":
        return total - (total * weight) // 100, math.ceil(total * weight / 100)
    return total, max(1, math.ceil(total * weight / 100))

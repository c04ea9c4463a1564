"""``spec.autoscaling`` parsed, and the status fields the ModelDeployment's scale subresource
reads (the HorizontalPodAutoscaler itself is rendered by ``builders``).

The autoscaler scales the ModelDeployment, not a slot's Deployment (as an HPA targets an
Argo Rollout): the slots swap at every promotion, and at each step the router sets both
slots' replicas from ``spec.replicas`` (with ``replicas`` the stable hands pods to the
candidate), so an HPA on a slot's Deployment would fight the rollout over its count.
Through the scale subresource it moves ``spec.replicas``, the one count every weight is a
share of; the operator sizes both slots from it and the capacity pass keeps the stable whole
until the candidate's pods are Ready. What it measures is the stable slot's pods
(``status.selector``): the version that carries the traffic. ``spec.replicas`` is not part
of a revision, so scaling never starts a rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modeldeploy.operator import defaults as d

Json = dict[str, Any]


@dataclass(frozen=True)
class Autoscaling:
    """``spec.autoscaling`` parsed (the schema's defaults applied when a body lacks them)."""

    min_replicas: int
    max_replicas: int
    target_cpu: int

    @classmethod
    def from_spec(cls, spec: Json) -> Autoscaling | None:
        """None when the spec asks for no autoscaler; ``ValueError`` naming the field for
        what the CRD's rules also refuse (a body may come from before they existed)."""
        raw = spec.get("autoscaling")
        if raw is None:
            return None
        if "maxReplicas" not in raw:
            raise ValueError("spec.autoscaling.maxReplicas is required")
        out = cls(
            min_replicas=int(raw.get("minReplicas", d.AUTOSCALING_MIN_REPLICAS)),
            max_replicas=int(raw["maxReplicas"]),
            target_cpu=int(raw.get("targetCPUUtilizationPercentage", d.AUTOSCALING_TARGET_CPU)),
        )
        if not 1 <= out.min_replicas <= out.max_replicas:
            raise ValueError(
                f"spec.autoscaling: minReplicas ({out.min_replicas}) must be at least 1 and "
                f"at most maxReplicas ({out.max_replicas})"
            )
        requests = ((spec.get("server") or {}).get("resources") or {}).get("requests") or {}
        if "cpu" not in requests:
            raise ValueError(
                "spec.autoscaling needs spec.server.resources.requests.cpu (CPU utilization "
                "is a share of it)"
            )
        return out


def scale_status(name: str, stable_slot: str | None, stable_ready: int) -> Json:
    """``status.replicas`` and ``status.selector``, the scale subresource's read side: the
    stable slot's Ready pods and their selector (every pod of the ModelDeployment before it
    has a stable slot), so ``kubectl scale`` and an autoscaler work with or without
    ``spec.autoscaling``."""
    selector = f"{d.LABEL_NAME}={name}"
    if stable_slot is not None:
        selector += f",{d.LABEL_SLOT}={stable_slot}"
    return {"replicas": stable_ready if stable_slot is not None else 0, "selector": selector}

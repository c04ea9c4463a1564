"""``spec.autoscaling``: a HorizontalPodAutoscaler on the stable slot, and the scale
subresource it (and ``kubectl scale``) writes ``spec.replicas`` through."""

from __future__ import annotations

from modeldeploy.operator import defaults as d
from modeldeploy.operator.schema.openapi import Schema, _int, _obj

# The CRD's scale subresource: an autoscaler sets spec.replicas, reads the replicas the
# stable slot runs and selects its pods for their CPU use.
SCALE_SUBRESOURCE = {
    "specReplicasPath": ".spec.replicas",
    "statusReplicasPath": ".status.replicas",
    "labelSelectorPath": ".status.selector",
}

AUTOSCALING_RULES: list[tuple[str, str]] = [
    (
        "!has(self.autoscaling) || (has(self.server.resources) && "
        "has(self.server.resources.requests) && 'cpu' in self.server.resources.requests)",
        "autoscaling needs server.resources.requests.cpu (CPU utilization is a share of it)",
    ),
]


def autoscaling_schema() -> Schema:
    return _obj(
        {
            "minReplicas": _int(
                "The fewest replicas the autoscaler sets.",
                minimum=1,
                maximum=1000,
                default=d.AUTOSCALING_MIN_REPLICAS,
            ),
            "maxReplicas": _int("The most replicas the autoscaler sets.", minimum=1, maximum=1000),
            "targetCPUUtilizationPercentage": _int(
                "The stable pods' mean CPU use, as a percent of their request, the autoscaler "
                "keeps them at.",
                minimum=1,
                maximum=100,
                default=d.AUTOSCALING_TARGET_CPU,
            ),
        },
        required=["maxReplicas"],
        description="A HorizontalPodAutoscaler (autoscaling/v2, owned by the ModelDeployment, "
        "removed when this is) on the stable slot's pods. It scales the ModelDeployment "
        "through its scale subresource, so it sets spec.replicas (leave replicas out of a "
        "GitOps manifest): every weight stays a share of that count, a candidate is sized "
        "from it and the stable gives up no share before the candidate's pods are Ready. "
        "Off by default.",
        rules=[
            (
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed maxReplicas",
            )
        ],
    )

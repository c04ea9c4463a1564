"""``spec.server``'s pod options: where and as whom the model server pods run, their extra
environment, and a PodDisruptionBudget per slot.

The Kubernetes sub-objects are declared as Kubernetes' own types declare them (closed types
with their enums, required fields and rules), so a bad one is refused at admission instead of
failing later when the operator applies the Deployment; only the open-ended ones (the three
affinity kinds) keep unknown fields. None of them reaches a security context: the restricted
profile the operator sets on every pod cannot be turned off from here.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.operator.modelsource import DNS_SUBDOMAIN
from modeldeploy.operator.podoptions import ENV_PREFIX
from modeldeploy.operator.schema.openapi import Schema, _bool, _exactly_one, _int, _list, _obj, _str

# The environment variable names Kubernetes accepted before 1.34 (a C identifier with dots
# and dashes): every supported cluster takes them.
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
PERCENT_OR_INT = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
    "x-kubernetes-validations": [
        {
            "rule": "type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')",
            "message": "a number of pods (0 or more) or a percent such as 50%",
        }
    ],
}
_IOS: dict[str, Any] = {"x-kubernetes-int-or-string": True}
PRESERVE: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _name_ref(description: str) -> Schema:
    return _str(description, pattern=DNS_SUBDOMAIN, maxLength=253)


def _key_ref(what: str) -> Schema:
    return _obj(
        {
            "name": _name_ref(f"The {what}."),
            "key": _str(f"The key in the {what}.", minLength=1, maxLength=253),
            "optional": _bool(),
        },
        required=["name", "key"],
        description=f"A key of a {what} in this namespace (the kubelet reads it).",
    )


def label_selector_schema() -> Schema:
    expression = _obj(
        {
            "key": _str(minLength=1, maxLength=317),
            "operator": _str(enum=["In", "NotIn", "Exists", "DoesNotExist"]),
            "values": _list(_str(maxLength=63), max_items=64),
        },
        required=["key", "operator"],
    )
    return _obj(
        {
            "matchLabels": {"type": "object", "additionalProperties": _str(maxLength=63)},
            "matchExpressions": _list(expression, max_items=16),
        },
        description="A label selector.",
    )


def toleration_schema() -> Schema:
    return _obj(
        {
            "key": _str(maxLength=317),
            "operator": _str(enum=["Exists", "Equal"]),
            "value": _str(maxLength=63),
            "effect": _str(enum=["", "NoSchedule", "PreferNoSchedule", "NoExecute"]),
            "tolerationSeconds": _int(),
        },
        rules=[
            (
                "!has(self.operator) || self.operator != 'Exists' || "
                "!has(self.value) || self.value == ''",
                "a toleration with operator Exists has no value",
            ),
            (
                "(has(self.key) && self.key != '') || "
                "(has(self.operator) && self.operator == 'Exists')",
                "a toleration without a key needs operator Exists",
            ),
            (
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                "tolerationSeconds applies only to effect NoExecute",
            ),
        ],
    )


def topology_spread_schema() -> Schema:
    return _obj(
        {
            "maxSkew": _int(minimum=1),
            "topologyKey": _str(minLength=1, maxLength=317),
            "whenUnsatisfiable": _str(enum=["DoNotSchedule", "ScheduleAnyway"]),
            "labelSelector": label_selector_schema(),
            "minDomains": _int(minimum=1),
            "matchLabelKeys": _list(_str(maxLength=317), max_items=16),
            "nodeAffinityPolicy": _str(enum=["Honor", "Ignore"]),
            "nodeTaintsPolicy": _str(enum=["Honor", "Ignore"]),
        },
        required=["maxSkew", "topologyKey", "whenUnsatisfiable"],
    )


def env_schema() -> Schema:
    value_from = _obj(
        {
            "secretKeyRef": _key_ref("Secret"),
            "configMapKeyRef": _key_ref("ConfigMap"),
            "fieldRef": _obj(
                {"apiVersion": _str(maxLength=64), "fieldPath": _str(minLength=1, maxLength=256)},
                required=["fieldPath"],
            ),
            "resourceFieldRef": _obj(
                {
                    "containerName": _str(maxLength=63),
                    "resource": _str(minLength=1, maxLength=63),
                    "divisor": {"anyOf": [{"type": "integer"}, {"type": "string"}], **_IOS},
                },
                required=["resource"],
            ),
        },
        rules=[
            (
                _exactly_one("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef"),
                "valueFrom has exactly one of secretKeyRef, configMapKeyRef, fieldRef, "
                "resourceFieldRef",
            )
        ],
    )
    var = _obj(
        {
            "name": _str(pattern=ENV_NAME_PATTERN, minLength=1, maxLength=256),
            "value": _str(maxLength=32768),
            "valueFrom": value_from,
        },
        required=["name"],
        rules=[
            ("!(has(self.value) && has(self.valueFrom))", "an env var has value or valueFrom"),
            (
                f"!self.name.startsWith('{ENV_PREFIX}')",
                f"env names beginning {ENV_PREFIX} are the model server's own settings",
            ),
        ],
    )
    return _list(
        var,
        "Extra environment of the model server container: {name, value} or {name, valueFrom} "
        f"(a Secret's or ConfigMap's key, a field, a resource). Names beginning {ENV_PREFIX} "
        "are refused: they are the server's own settings.",
        64,
        **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


def pod_properties() -> dict[str, Schema]:
    """The pod options, merged into ``spec.server``'s properties."""
    return {
        "nodeSelector": {
            "type": "object",
            "additionalProperties": _str(maxLength=63),
            "description": "Node labels the pods must be scheduled on (the pod's nodeSelector).",
        },
        "tolerations": _list(toleration_schema(), "Taints the pods tolerate.", 32),
        "affinity": _obj(
            {"nodeAffinity": PRESERVE, "podAffinity": PRESERVE, "podAntiAffinity": PRESERVE},
            description="The pods' affinity, as a pod's (passed through as given).",
        ),
        "topologySpreadConstraints": _list(
            topology_spread_schema(),
            "How the pods spread across topology domains (zones, nodes). A constraint "
            "without a labelSelector gets the slot's own pod selector (modeldeploy.io/name "
            "and modeldeploy.io/slot), so each slot spreads on its own.",
            16,
        ),
        "priorityClassName": _name_ref("The pods' PriorityClass."),
        "imagePullSecrets": _list(
            _obj({"name": _name_ref("A Secret in this namespace.")}, required=["name"]),
            "Secrets the kubelet pulls the image with.",
            16,
        ),
        "env": env_schema(),
        "serviceAccountName": _name_ref(
            "The pods' ServiceAccount; default: none is set (the namespace's default "
            "account, with no token mounted)."
        ),
        "automountServiceAccountToken": _bool(
            "Mount the service account's token; only with serviceAccountName. Default false."
        ),
        "podDisruptionBudget": _obj(
            {
                "maxUnavailable": {
                    **PERCENT_OR_INT,
                    "description": "Pods of a slot that may be evicted at once (or a percent).",
                },
                "minAvailable": {
                    **PERCENT_OR_INT,
                    "description": "Pods of a slot that must stay (or a percent).",
                },
            },
            description="A PodDisruptionBudget per slot Deployment, selecting that slot's "
            "pods, owned by the ModelDeployment; removed when this is removed. Off by default.",
            rules=[
                (
                    _exactly_one("maxUnavailable", "minAvailable"),
                    "podDisruptionBudget has exactly one of maxUnavailable, minAvailable",
                )
            ],
        ),
    }


POD_RULES: list[tuple[str, str]] = [
    (
        "!has(self.automountServiceAccountToken) || !self.automountServiceAccountToken || "
        "has(self.serviceAccountName)",
        "automountServiceAccountToken needs serviceAccountName",
    )
]

# What changing the options does, for spec.server's description.
POD_CHANGES = (
    " The pod options (nodeSelector to podDisruptionBudget) are not part of the model's "
    "revision: both slots' pods always carry the same ones, and changing them rolls both "
    "slots' pods in place (a Deployment rolling update, no pod taken before its replacement "
    "is Ready), without a model rollout or analysis."
)

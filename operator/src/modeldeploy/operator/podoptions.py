"""``spec.server``'s pod options, parsed: placement, identity, extra environment and the
PodDisruptionBudget of the slots (the schema is ``schema/podspec.py``).

They are not part of a slot's ``Template`` (the model's revision): both slots' pods always
carry the options of the current spec, so a promotion or a rollback never moves traffic onto
pods placed differently, and changing them rolls the slots' pods in place instead of rolling
out a new model. Nothing here reaches a security context.

Errors are ``ValueError`` naming the field; ``model.Spec.from_body`` reports them as a
``SpecError`` (the status then says ``invalid spec: ...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.server import contract as c
from modeldeploy.server.contract import sources as src

Json = dict[str, Any]

# Every environment variable the model server and its init container read is named
# MODELDEPLOY_...; a user's env must not override the pods' own settings.
ENV_PREFIX = "MODELDEPLOY_"
SERVER_ENV_NAMES = (
    c.ENV_SHA256,
    src.ENV_S3_ACCESS_KEY_ID,
    src.ENV_S3_SECRET_ACCESS_KEY,
    src.ENV_S3_SESSION_TOKEN,
)
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_VALUE_SOURCES = ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef")


def _env(raw: Any) -> tuple[Json, ...]:
    out: list[Json] = []
    seen: set[str] = set()
    for i, var in enumerate(raw or []):
        where = f"spec.server.env[{i}]"
        name = var.get("name") if isinstance(var, dict) else None
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ValueError(f"{where}.name: {name!r} is not an environment variable name")
        if name.startswith(ENV_PREFIX):
            raise ValueError(
                f"{where}.name: {name} is refused: names beginning {ENV_PREFIX} are the model "
                "server's own settings"
            )
        if name in seen:
            raise ValueError(f"{where}.name: {name} is set twice")
        seen.add(name)
        if "value" in var and "valueFrom" in var:
            raise ValueError(f"{where} ({name}): set value or valueFrom, not both")
        if "valueFrom" in var:
            kinds = [k for k in _VALUE_SOURCES if k in (var["valueFrom"] or {})]
            if len(kinds) != 1:
                raise ValueError(
                    f"{where}.valueFrom ({name}): exactly one of {', '.join(_VALUE_SOURCES)}"
                )
        out.append(dict(var))
    return tuple(out)


def _pdb(raw: Any) -> Json | None:
    if raw is None:
        return None
    keys = [k for k in ("maxUnavailable", "minAvailable") if k in raw]
    if len(keys) != 1:
        raise ValueError(
            "spec.server.podDisruptionBudget: set exactly one of maxUnavailable, minAvailable"
        )
    return {keys[0]: raw[keys[0]]}


@dataclass(frozen=True)
class PodOptions:
    """The pod-level options of ``spec.server``, as given (Kubernetes' own field names)."""

    node_selector: Json = field(default_factory=dict)
    tolerations: tuple[Json, ...] = ()
    affinity: Json = field(default_factory=dict)
    topology_spread: tuple[Json, ...] = ()
    priority_class_name: str = ""
    image_pull_secrets: tuple[str, ...] = ()
    env: tuple[Json, ...] = ()
    service_account_name: str = ""
    automount_token: bool = False
    disruption_budget: Json | None = None  # {"maxUnavailable": N} or {"minAvailable": N}

    @classmethod
    def from_json(cls, server: Json) -> PodOptions:
        automount = bool(server.get("automountServiceAccountToken", False))
        account = str(server.get("serviceAccountName") or "")
        if automount and not account:
            raise ValueError(
                "spec.server.automountServiceAccountToken needs spec.server.serviceAccountName"
            )
        return cls(
            node_selector=dict(server.get("nodeSelector") or {}),
            tolerations=tuple(dict(t) for t in server.get("tolerations") or []),
            affinity=dict(server.get("affinity") or {}),
            topology_spread=tuple(dict(t) for t in server.get("topologySpreadConstraints") or []),
            priority_class_name=str(server.get("priorityClassName") or ""),
            image_pull_secrets=tuple(s["name"] for s in server.get("imagePullSecrets") or []),
            env=_env(server.get("env")),
            service_account_name=account,
            automount_token=automount,
            disruption_budget=_pdb(server.get("podDisruptionBudget")),
        )

    def pod_spec(self, slot_selector: dict[str, str]) -> Json:
        """The pod spec fields these options set (none when unset); a topology spread
        constraint without a labelSelector selects the slot's own pods."""
        out: Json = {"automountServiceAccountToken": self.automount_token}
        if self.service_account_name:
            out["serviceAccountName"] = self.service_account_name
        if self.node_selector:
            out["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            out["tolerations"] = [dict(t) for t in self.tolerations]
        if self.affinity:
            out["affinity"] = dict(self.affinity)
        if self.topology_spread:
            out["topologySpreadConstraints"] = [
                {"labelSelector": {"matchLabels": dict(slot_selector)}, **t}
                if "labelSelector" not in t
                else dict(t)
                for t in self.topology_spread
            ]
        if self.priority_class_name:
            out["priorityClassName"] = self.priority_class_name
        if self.image_pull_secrets:
            out["imagePullSecrets"] = [{"name": n} for n in self.image_pull_secrets]
        return out

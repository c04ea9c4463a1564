"""What every object a ModelDeployment owns shares: the owner reference, names and labels.

The builders and the traffic routers both render children; this is the part they share,
so neither has to import the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator.model import Json


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment that owns a child (garbage collection deletes children with it)."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> Json:
        return {
            "apiVersion": d.API_VERSION,
            "kind": d.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Owner:
        meta = body.get("metadata") or {}
        return cls(name=meta["name"], namespace=meta.get("namespace", ""), uid=meta["uid"])


def slot_name(name: str, slot: str) -> str:
    return f"{name}-{slot}"


def selector(owner: Owner, slot: str | None = None) -> dict[str, str]:
    out = {d.LABEL_NAME: owner.name}
    if slot:
        out[d.LABEL_SLOT] = slot
    return out


def common_labels(owner: Owner, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": owner.name,
        "app.kubernetes.io/part-of": "modeldeploy",
        "app.kubernetes.io/managed-by": "modeldeploy",
        "app.kubernetes.io/component": component,
        d.LABEL_NAME: owner.name,
    }


def metadata(owner: Owner, name: str, component: str, **labels: str) -> Json:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**common_labels(owner, component), **labels},
        "ownerReferences": [owner.reference()],
    }

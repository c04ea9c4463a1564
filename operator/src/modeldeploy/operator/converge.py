"""Converging the children: apply what the engine asks for, and repair what others changed.

Every child (Deployment, Service, HTTPRoute, VirtualService, PrometheusRule) is watched
through a kopf index of small markers: its ``metadata.generation`` (which moves only when
its spec changes), else its ``resourceVersion`` (a Service has no generation). After an
apply the operator remembers the markers the apiserver answered with; a resync re-applies a
ModelDeployment's children only when the desired objects changed, or a child is missing
(deleted) or carries another marker (edited by hand): a repair within one resync, at the
cost of memory instead of an apply of every child on every resync.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from modeldeploy.operator import defaults as d

Json = dict[str, Any]
ChildKey = tuple[str, str]  # (kind, name)
Markers = dict[ChildKey, str]

# (group, version, plural, kind) of every kind a ModelDeployment may own.
CHILD_KINDS: tuple[tuple[str, str, str, str], ...] = (
    ("apps", "v1", "deployments", "Deployment"),
    ("", "v1", "services", "Service"),
    ("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute"),
    ("networking.istio.io", "v1beta1", "virtualservices", "VirtualService"),
    ("monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule"),
)


def digest(objs: list[Json]) -> str:
    return hashlib.sha256(json.dumps(objs, sort_keys=True).encode()).hexdigest()


def marker(meta: Mapping[str, Any]) -> str:
    """What changes when someone else changes a child's spec (not its status)."""
    generation = meta.get("generation")
    if generation:
        return f"g{generation}"
    return f"rv{meta.get('resourceVersion', '')}"


def index_entry(kind: str, body: Mapping[str, Any]) -> dict[tuple[str, str], Markers]:
    """The kopf index function's value for one child: {(namespace, owner): {child: mark}}."""
    meta = body.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(d.LABEL_NAME, "")
    key = (meta.get("namespace") or "", owner)
    return {key: {(kind, meta.get("name", "")): marker(meta)}}


def observed(indexes: Iterable[Any], key: tuple[str, str]) -> Markers:
    """The markers of every child of ``key`` the indexes hold."""
    out: Markers = {}
    for index in indexes:
        if index is None:
            continue
        for entry in index.get(key, []):
            out.update(entry)
    return out


def needs_apply(last: tuple[str, Markers] | None, want_digest: str, seen: Markers | None) -> bool:
    """Whether the children must be applied: new desired state, or a child missing or
    changed by someone else (``seen`` None: nothing is watched, so apply)."""
    if last is None or last[0] != want_digest or seen is None:
        return True
    return any(seen.get(child) != mark for child, mark in last[1].items())

"""Converging the children: apply what the engine asks for, and repair what others changed.

Every child (Deployment, Service, PodDisruptionBudget, HTTPRoute, VirtualService,
TraefikService, PrometheusRule) is watched through a kopf index of small markers: its
``metadata.generation`` (which moves only when its spec changes), else its
``resourceVersion`` (a Service has no generation). After an
apply the operator remembers the markers the apiserver answered with; a resync re-applies a
ModelDeployment's children only when the desired objects changed, or a child is missing
(deleted) or carries another marker (edited by hand): a repair within one resync, at the
cost of memory instead of an apply of every child on every resync. A slot's
PodDisruptionBudget that the spec no longer asks for is deleted (the one child that can go
while its ModelDeployment stays).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import kopf

from modeldeploy.operator import defaults as d
from modeldeploy.operator.builders import Owner, pod_role_patch
from modeldeploy.operator.desired import children
from modeldeploy.operator.kube import KubeError
from modeldeploy.operator.model import Spec
from modeldeploy.operator.owned import slot_name
from modeldeploy.operator.promrules import PROMETHEUS_RULE_API
from modeldeploy.operator.routers import router_for

if TYPE_CHECKING:
    from modeldeploy.operator.runtime import Runtime

Json = dict[str, Any]
ChildKey = tuple[str, str]  # (kind, name)
Markers = dict[ChildKey, str]

# (group, version, plural, kind) of every kind a ModelDeployment may own.
CHILD_KINDS: tuple[tuple[str, str, str, str], ...] = (
    ("apps", "v1", "deployments", "Deployment"),
    ("", "v1", "services", "Service"),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute"),
    ("networking.istio.io", "v1beta1", "virtualservices", "VirtualService"),
    ("traefik.io", "v1alpha1", "traefikservices", "TraefikService"),
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


def stale_children(spec: Spec, objs: list[Json], present: Markers) -> list[ChildKey]:
    """The optional children the spec no longer asks for that are ``present`` (watched, or
    applied last time): the slots' PodDisruptionBudgets (the option was removed, or a slot's
    Deployment went) and the HorizontalPodAutoscaler (autoscaling was turned off)."""
    wanted = {(o["kind"], o["metadata"]["name"]) for o in objs}
    optional = [("PodDisruptionBudget", slot_name(spec.name, s)) for s in d.SLOTS]
    optional.append(("HorizontalPodAutoscaler", spec.name))
    return [key for key in optional if key not in wanted and key in present]


async def apply_children(
    rt: Runtime, body: kopf.Body, spec: Spec, actions: Any, seen: Markers | None
) -> None:
    """Apply the desired children when they changed, or one was deleted or edited."""
    key = (spec.namespace, spec.name)
    owner = Owner.from_body(body)
    with_rule = await rt.kube.has_api(*PROMETHEUS_RULE_API)
    router = router_for(spec)
    api = router.required_api
    with_traffic = api is None or await rt.kube.has_api(api.group, api.version, api.plural)
    objs = children(owner, spec, actions, with_rule=with_rule, with_traffic=with_traffic)
    if api is not None and not with_traffic:  # the router's objects are left out
        warn = (spec.namespace, spec.name, router.name)
        if warn not in rt.warned:
            rt.warned.add(warn)
            kopf.warn(body, reason="ProviderMissing", message=api.missing_message(router.name))
    want = digest(objs)
    last = rt.applied.get(key)
    stale = stale_children(spec, objs, seen if seen is not None else (last[1] if last else {}))
    if not needs_apply(last, want, seen) and not stale:
        return
    markers: Markers = {}
    for obj in objs:
        res = await rt.kube.apply(obj)
        meta = res.get("metadata") or obj["metadata"]
        markers[(obj["kind"], obj["metadata"]["name"])] = marker(meta)
    for kind, name in stale:
        await rt.kube.delete(kind, spec.namespace, name)
    rt.applied[key] = (want, markers)


async def label_pods(rt: Runtime, spec: Spec, roles: dict[str, str], pods: Any) -> None:
    """Set ``modeldeploy.io/role`` on running pods (templates never carry it: no restarts)."""
    for slot, role in roles.items():
        for pod in list(pods.get((spec.namespace, spec.name, slot), [])) if pods else []:
            if pod["role"] != role and not pod["deleting"]:
                try:
                    await rt.kube.patch("Pod", spec.namespace, pod["name"], pod_role_patch(role))
                except KubeError as exc:
                    if exc.status != 404:
                        raise

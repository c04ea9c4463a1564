"""Converging the children: apply what the engine asks for, and repair what others changed.

Every child (Deployment, Service, PodDisruptionBudget, HTTPRoute, VirtualService,
TraefikService, PrometheusRule) is watched through a kopf index of small markers: its
``metadata.generation`` (which moves only when its spec changes), else its
``resourceVersion`` (a Service has no generation). After an
apply the operator remembers, per child, a digest of what it applied and the marker the
apiserver answered with; a reconcile applies only the children whose desired object changed,
or that are missing (deleted) or carry another marker (edited by hand): a repair within one
resync, and a canary step that moves a weight writes the route alone, not every child (at
500 ModelDeployments mid-rollout those writes queued the rollbacks). The ones it applies go
in the make-before-break order of ``desired.children``. A slot's
PodDisruptionBudget that the spec no longer asks for is deleted (the one child that can go
while its ModelDeployment stays).
"""

from __future__ import annotations

import hashlib
import pickle
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


# child -> (digest of the object last applied, the marker the apiserver answered with)
Applied = dict[ChildKey, tuple[bytes, str]]


def digest(obj: Json) -> bytes:
    """What is remembered of an applied object: 16 bytes (500 ModelDeployments of eight
    children each keep well under a MiB).

    Every reconcile digests every desired child, so this is on the hot path: pickle is about
    three times faster than canonical JSON here (canonical JSON was a thirteenth of the
    event loop at 500 ModelDeployments). Equal objects built by the same builders pickle
    alike; two equal objects pickled differently (another key order, say) would only cost
    one needless apply, and different objects never pickle alike."""
    return hashlib.blake2b(pickle.dumps(obj, protocol=5), digest_size=16).digest()


def child_key(obj: Json) -> ChildKey:
    return (obj["kind"], obj["metadata"]["name"])


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


def to_apply(objs: list[Json], last: Applied, seen: Markers | None) -> list[tuple[Json, bytes]]:
    """The desired children that must be applied, in ``objs``' order, with their digests:
    never applied, changed since, or missing or changed by someone else in the watch
    (``seen`` None: nothing is watched, so all of them)."""
    out = []
    for obj in objs:
        child, want = child_key(obj), digest(obj)
        unchanged = seen is not None and last.get(child) == (want, seen.get(child))
        if not unchanged:
            out.append((obj, want))
    return out


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
    last = rt.applied.setdefault(key, {})
    present = seen if seen is not None else {child: mark for child, (_, mark) in last.items()}
    for obj, want in to_apply(objs, last, seen):
        res = await rt.kube.apply(obj)
        last[child_key(obj)] = (want, marker(res.get("metadata") or obj["metadata"]))
    for kind, name in stale_children(spec, objs, present):
        await rt.kube.delete(kind, spec.namespace, name)
        last.pop((kind, name), None)


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

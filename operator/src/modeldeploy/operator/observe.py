"""Turn what the apiserver says about Deployments and Pods into the engine's observations.

Pure functions over plain dicts, used by the kopf indexes (so the handlers read the slots
from memory instead of asking the apiserver on every reconcile) and tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator.model import SlotObservation

Json = dict[str, Any]


def deployment_summary(body: Json) -> Json:
    """The fields of a slot Deployment the engine needs, as a small dict for an index."""
    meta: Json = body.get("metadata") or {}
    spec: Json = body.get("spec") or {}
    status: Json = body.get("status") or {}
    wanted = spec.get("replicas")
    replicas = int(wanted) if wanted is not None else 1
    updated = int(status.get("updatedReplicas") or 0)
    up_to_date = (
        int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and int(status.get("replicas") or 0) <= max(updated, replicas)
        and (replicas == 0 or updated >= replicas)
    )
    return {
        "revision": (meta.get("annotations") or {}).get(d.ANNOTATION_REVISION, ""),
        "replicas": replicas,
        "ready": int(status.get("readyReplicas") or 0),
        "updated": updated,
        "upToDate": up_to_date,
    }


def pod_summary(body: Json) -> Json:
    """Name, role label, readiness and (when not ready) why: for an index."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return {
        "name": meta.get("name", ""),
        "role": (meta.get("labels") or {}).get(d.LABEL_ROLE, ""),
        "revision": (meta.get("annotations") or {}).get(d.ANNOTATION_REVISION, ""),
        "ready": ready,
        "deleting": bool(meta.get("deletionTimestamp")),
        "reason": "" if ready else not_ready_reason(status),
    }


def not_ready_reason(status: Json) -> str:
    """A one-line reason a pod is not ready, from its init and main containers."""
    for kind, key in (
        ("init container", "initContainerStatuses"),
        ("container", "containerStatuses"),
    ):
        for cs in status.get(key) or []:
            state = cs.get("state") or {}
            last = (cs.get("lastState") or {}).get("terminated") or {}
            waiting = state.get("waiting") or {}
            terminated = state.get("terminated") or {}
            name = cs.get("name", "?")
            if terminated and terminated.get("exitCode", 0) != 0:
                return _reason(kind, name, terminated)
            if waiting:
                text = f"{kind} {name} {waiting.get('reason', 'waiting')}"
                if last:  # the last exit says why; the back-off message adds nothing
                    return f"{text}; last exit: {_reason(kind, name, last)}"
                if waiting.get("message"):
                    text += f": {waiting['message'][:200]}"
                return text
            if kind == "container" and not cs.get("ready"):
                return f"{kind} {name} running but not ready (readiness probe)" + (
                    f"; last exit: {_reason(kind, name, last)}" if last else ""
                )
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True" and cond.get("message"):
            return f"{cond.get('type')}: {cond['message']}"
    return status.get("phase", "") and f"pod {status.get('phase', '').lower()}"


def _reason(kind: str, name: str, terminated: Json) -> str:
    msg = (terminated.get("message") or "").strip().splitlines()
    tail = f": {msg[-1][:300]}" if msg else ""
    return (
        f"{kind} {name} exited {terminated.get('exitCode')} "
        f"({terminated.get('reason', 'Error')}){tail}"
    )


def slot_observation(deployment: Json | None, pods: Iterable[Json]) -> SlotObservation:
    if deployment is None:
        return SlotObservation()
    pods = list(pods)
    reason = next(
        (p["reason"] for p in pods if not p["ready"] and p["reason"] and not p["deleting"]), ""
    )
    return SlotObservation(
        exists=True,
        revision=deployment["revision"],
        replicas=deployment["replicas"],
        ready_replicas=deployment["ready"],
        updated_replicas=deployment["updated"],
        up_to_date=deployment["upToDate"],
        reason=reason,
    )

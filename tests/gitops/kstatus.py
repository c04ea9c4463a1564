"""kstatus, the status reading of Flux, `kubectl wait --for` tooling and kpt, for our kind.

A transcription of the generic rules of sigs.k8s.io/cli-utils/pkg/kstatus for a custom
resource (no type-specific rules apply to it):
  1. metadata.deletionTimestamp set                    -> Terminating
  2. status.observedGeneration != metadata.generation  -> InProgress
  3. condition Reconciling is True                     -> InProgress
  4. condition Stalled is True                         -> Failed
  5. otherwise                                         -> Current
Flux additionally reads Ready of a Current object as the result of the last reconciliation,
so ``ready`` reports it beside the kstatus result.
"""

from __future__ import annotations

from typing import Any

TERMINATING = "Terminating"
IN_PROGRESS = "InProgress"
FAILED = "Failed"
CURRENT = "Current"


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def compute(obj: dict[str, Any]) -> tuple[str, str]:
    """(kstatus result, message) of an object."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return TERMINATING, "Resource scheduled for deletion"
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return (
            IN_PROGRESS,
            f"{obj['kind']} generation is {generation}, but latest observed generation is "
            f"{observed}",
        )
    reconciling = _condition(status, "Reconciling")
    if reconciling and reconciling.get("status") == "True":
        return IN_PROGRESS, reconciling.get("message", "")
    stalled = _condition(status, "Stalled")
    if stalled and stalled.get("status") == "True":
        return FAILED, stalled.get("message", "")
    return CURRENT, "Resource is current"


def ready(obj: dict[str, Any]) -> str | None:
    """The Ready condition's status ("True", "False", "Unknown") or None."""
    cond = _condition(obj.get("status") or {}, "Ready")
    return cond.get("status") if cond else None


def well_formed(obj: dict[str, Any]) -> list[str]:
    """Problems with the conditions by the Kubernetes API conventions (empty: none)."""
    out = []
    conditions = (obj.get("status") or {}).get("conditions") or []
    types = [c.get("type") for c in conditions]
    if len(types) != len(set(types)):
        out.append(f"duplicate condition types {types}")
    for c in conditions:
        for key in ("type", "status", "reason", "lastTransitionTime"):
            if not c.get(key) and not (key == "reason" and c.get("status") == "Unknown"):
                out.append(f"{c.get('type')}: missing {key}")
        if c.get("status") not in ("True", "False", "Unknown"):
            out.append(f"{c.get('type')}: status {c.get('status')!r}")
        reason = c.get("reason") or ""
        if reason and not (reason[0].isupper() and reason.replace("_", "").isalnum()):
            out.append(f"{c.get('type')}: reason {reason!r} is not CamelCase")
    return out

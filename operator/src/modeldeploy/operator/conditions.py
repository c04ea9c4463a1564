"""Status conditions in the Kubernetes API conventions (what kstatus, Flux and Argo CD read)."""

from __future__ import annotations

from typing import Any


def set_condition(
    status: dict[str, Any],
    type_: str,
    value: str,
    reason: str,
    message: str,
    now: str,
    generation: int,
) -> None:
    """Upsert condition ``type_``; ``lastTransitionTime`` moves only when ``value`` changes."""
    conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = now
            cond.update(status=value, reason=reason, message=message, observedGeneration=generation)
            break
    else:
        conditions.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
                "observedGeneration": generation,
            }
        )
    status["conditions"] = conditions


def get_condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None

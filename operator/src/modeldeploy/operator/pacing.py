"""When a ModelDeployment is reconciled again: on a change of what it observes, at the time
its engine said, on a wake-up, and at least once a minute.

A reconcile is a pure function of its inputs (the spec, the status, the slots' Deployments
and Pods, its children, its Prometheus snapshot) and of the clock, and the engine reports
when the clock would next change its answer (``Actions.recheck_at``: a pause ending, a
deadline passing). So the per-object loop checks every ``--resync-seconds`` whether any
input changed, which costs a few comparisons, and reconciles only then. At 500
ModelDeployments a full reconcile of each every 5 s was most of the operator's CPU and
held back the reconciles that had something to judge.

What the fingerprint leaves out is covered elsewhere: the status is ours (written by the
reconcile itself); a rollout's next sample wakes it when its poll arrives
(``sampling.wake_due``); a newly firing alert wakes it at once (the alerts poll); a
``models:/`` alias may move in the registry, so such a ModelDeployment is reconciled on
every tick, as before; and ``FULL_RESYNC_SECONDS`` bounds anything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator.analysis import Snapshot

FULL_RESYNC_SECONDS = 60.0

Key = tuple[str, str]


def inputs_of(
    body: Mapping[str, Any],
    deployments: Any,
    pods: Any,
    children: Mapping[tuple[str, str], str] | None,
    snapshot: Snapshot | None,
) -> tuple[Any, ...] | None:
    """What a reconcile of ``body`` observes, in a form compared with ``==``; None when it
    must be reconciled on every tick (a registry alias that can move)."""
    meta = body["metadata"]
    uri = str(((body.get("spec") or {}).get("model") or {}).get("bundleURI") or "")
    if uri.startswith("models:/"):
        return None
    key = (meta["namespace"], meta["name"])
    slots = tuple(
        (
            list(deployments.get((*key, slot), [])) if deployments is not None else None,
            list(pods.get((*key, slot), [])) if pods is not None else None,
        )
        for slot in d.SLOTS
    )
    seen = None if snapshot is None else _seen(snapshot, key)
    control = (meta.get("annotations") or {}).get(d.ANNOTATION_CONTROL)
    return (meta.get("generation"), control, slots, children, seen)


def _seen(snap: Snapshot, key: Key) -> tuple[Any, ...]:
    """The part of a snapshot a reconcile acts on outside its due samples: whether
    Prometheus answered, which alerts fire, what is scraped, which rules are loaded."""
    return (
        snap.url,
        bool(snap.error),
        snap.firing.get(key),
        snap.scraped.get(key),
        snap.rules,
    )


@dataclass
class Pace:
    """One ModelDeployment's loop: what its last reconcile saw, and when to look again."""

    inputs: tuple[Any, ...] | None = None
    recheck_at: datetime | None = None
    reconciled_at: float = field(default=-1e18)  # time.monotonic() of the last reconcile

    def wait_seconds(self, tick: float, now: datetime) -> float:
        """How long to sleep before the next look: a tick, or less when a recheck is due."""
        if self.recheck_at is None:
            return tick
        return max(0.01, min(tick, (self.recheck_at - now).total_seconds() + 0.01))

    def why(
        self,
        inputs: tuple[Any, ...] | None,
        now: datetime,
        clock: Callable[[], float] = time.monotonic,
    ) -> str | None:
        """Why to reconcile now (the metric's trigger), or None when nothing can have
        changed since the last reconcile."""
        if inputs is None or self.inputs is None or inputs != self.inputs:
            return "changed"
        if self.recheck_at is not None and now >= self.recheck_at:
            return "timed"
        if clock() - self.reconciled_at >= FULL_RESYNC_SECONDS:
            return "resync"
        return None

    def reconciled(
        self,
        inputs: tuple[Any, ...] | None,
        recheck_at: datetime | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inputs, self.recheck_at, self.reconciled_at = inputs, recheck_at, clock()

"""When a ModelDeployment is sampled: its snapshot from the batched poller, and the wake-ups.

A sample is judged in a reconcile. Reconciles come from the object's resync timer, from
changes, and from two wake-ups that do not wait for either: an alert that starts firing
(the alerts poll), and a full poll that brings a rollout's next sample (``wake_due``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator import engine
from modeldeploy.operator.analysis import Snapshot
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import Spec
from modeldeploy.operator.runtime import Runtime


async def analysis_sample(rt: Runtime, spec: Spec, status: RolloutStatus) -> AnalysisSample | None:
    """The latest batched snapshot for this ModelDeployment, plus its checks when due.

    Also between rollouts: the engine watches the stable's drift alert in every sample."""
    url = spec.analysis.prometheus_url or rt.config.prometheus_url
    if not url:
        return AnalysisSample(
            at=rt.now(), error="no Prometheus: set spec.analysis.prometheusURL or --prometheus-url"
        )
    assert rt.poller is not None
    snap: Snapshot | None = rt.poller.want(url)
    if snap is None:
        return None
    checks: tuple[Any, ...] = ()
    if spec.analysis.checks and not snap.error and engine.sample_due(spec, status, snap.at):
        role = engine.analysis_role(spec, status) or d.ROLE_CANDIDATE
        client = rt.poller.client
        checks = tuple(
            await asyncio.gather(
                *(
                    client.check(url, c, spec.namespace, spec.name, role)
                    for c in spec.analysis.checks
                )
            )
        )
    return snap.sample(spec.namespace, spec.name, checks)


def remember_due(rt: Runtime, key: tuple[str, str], spec: Spec, status: RolloutStatus) -> None:
    """Note when this rollout's next sample is due, so the poll that brings it wakes it."""
    at = engine.next_sample_at(spec, status)
    url = spec.analysis.prometheus_url or rt.config.prometheus_url
    if at is None or not url:
        rt.due.pop(key, None)
    else:
        rt.due[key] = (url, at)


def wake_due(rt: Runtime, url: str, snap: Snapshot) -> None:
    """A fresh snapshot of ``url``: reconcile now every rollout whose next sample it is.

    Without this a due sample waits for the object's resync (up to its period, more when
    the operator is busy); with it the tick is judged as soon as its evidence is there."""
    if snap.error:
        return
    wake(rt, {key for key, (u, at) in rt.due.items() if u == url and at <= snap.at})


def wake_alerted(rt: Runtime, keys: set[tuple[str, str]]) -> None:
    """An alert just started firing for these: reconcile them now, their calls first (a
    rollback must not wait behind the routine writes of every other ModelDeployment)."""
    rt.alerted.update(keys & rt.wakeups.keys())
    wake(rt, keys)


def wake(rt: Runtime, keys: set[tuple[str, str]]) -> None:
    """Reconcile these ModelDeployments now (an alert just started firing for them, or a
    snapshot brought their next sample)."""
    for key in keys:
        event = rt.wakeups.get(key)
        if event is not None:
            event.set()

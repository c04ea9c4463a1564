"""When a ModelDeployment is reconciled although nothing told the operator it changed.

Two reasons: a wake-up (an alert started firing, or a full poll brought the rollout's next
sample: ``sampling``), and the resync, which catches what no event signals (a step's pause
or a deadline running out, a child deleted while the operator was away). Both run in one
loop per object, and the resync comes ``resync_seconds`` after the object's *last*
reconcile, whatever started that one.

It used to be kopf's own timer, every ``resync_seconds`` after the timer's previous run. A
rollout woken for each of its samples then was also reconciled by the timer a second later,
to the same decision: at 500 ModelDeployments those timer runs were about a third of the
event loop's busy time. Counting from the last reconcile keeps the promise (no object goes
longer than ``resync_seconds`` without one) with none of the duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from modeldeploy.operator.runtime import Runtime

log = logging.getLogger("modeldeploy.operator")

Key = tuple[str, str]
# After a reconcile that failed unexpectedly (a bug, not the apiserver), before the next try.
CRASH_PAUSE_SECONDS = 5.0


def seconds_until_resync(last: float, period: float, now: float) -> float:
    """How long to wait for a wake-up before the resync is due (0: it is due now)."""
    return max(0.0, last + period - now)


async def woken(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; whether it was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout=timeout)
    except TimeoutError:
        return False
    return True


def done(rt: Runtime, key: Key) -> None:
    """A reconcile of ``key`` just ended (whatever its outcome): the resync counts from here."""
    rt.reconciled[key] = time.monotonic()


async def run(
    rt: Runtime, key: Key, stopped: Any, reconcile: Callable[[str], Awaitable[None]]
) -> None:
    """Reconcile ``key`` on each wake-up, and a resync period after its last reconcile,
    until kopf stops this daemon (``stopped``: the object is going, or the operator)."""
    event = rt.wakeups.setdefault(key, asyncio.Event())
    started = time.monotonic()
    while not stopped:
        last = rt.reconciled.get(key, started)
        wait = seconds_until_resync(last, rt.config.resync_seconds, time.monotonic())
        trigger = "wake" if wait > 0 and await woken(event, wait) else "timer"
        if stopped:
            return
        if trigger == "timer" and rt.reconciled.get(key, started) != last:
            continue  # another reconcile ended while this one waited: count from it
        event.clear()  # what woke it is seen by this reconcile; a later wake-up is kept
        try:
            await reconcile(trigger)
        except kopf.TemporaryError as exc:
            log.warning("%s/%s: reconcile (%s) failed: %s", *key, trigger, exc)
        except Exception:  # never let one object's bug stop its reconciles for good
            rt.metrics.errors.labels(kind="crash").inc()
            log.exception("%s/%s: reconcile (%s) crashed", *key, trigger)
            await asyncio.sleep(CRASH_PAUSE_SECONDS)

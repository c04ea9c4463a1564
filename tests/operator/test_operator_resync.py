"""The per-object loop: a reconcile on each wake-up, and a resync period after the object's
last reconcile, whatever started it; never a second one right after a woken reconcile."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf
import pytest

from modeldeploy.operator import resync
from modeldeploy.operator.metrics import OperatorMetrics
from modeldeploy.operator.runtime import Config, Runtime

KEY = ("ml", "iris")
PERIOD = 0.3  # the resync period of these tests (the default is 5 s)


class Stopped:
    """kopf's ``stopped`` flag: true once the daemon is asked to stop."""

    def __init__(self) -> None:
        self.set = False

    def __bool__(self) -> bool:
        return self.set


def _runtime() -> Runtime:
    return Runtime(
        config=Config(resync_seconds=PERIOD),
        kube=object(),  # type: ignore[arg-type]
        metrics=OperatorMetrics.create(),
    )


class Recorder:
    """A reconcile that records its trigger and when it ran, and ends as the real one does
    (``resync.done``), optionally failing first."""

    def __init__(self, rt: Runtime, fail: BaseException | None = None) -> None:
        self.rt, self.fail = rt, fail
        self.runs: list[tuple[str, float]] = []

    async def __call__(self, trigger: str) -> None:
        self.runs.append((trigger, time.monotonic()))
        try:
            if self.fail is not None:
                raise self.fail
        finally:
            resync.done(self.rt, KEY)


def test_the_resync_is_due_a_period_after_the_last_reconcile() -> None:
    assert resync.seconds_until_resync(10.0, 5.0, 12.0) == 3.0
    assert resync.seconds_until_resync(10.0, 5.0, 15.0) == 0.0
    assert resync.seconds_until_resync(10.0, 5.0, 40.0) == 0.0


async def _run_for(rt: Runtime, rec: Recorder, seconds: float, during: Any = None) -> None:
    stopped = Stopped()
    task = asyncio.create_task(resync.run(rt, KEY, stopped, rec))
    if during is not None:
        await during()
    else:
        await asyncio.sleep(seconds)
    stopped.set = True
    rt.wakeups[KEY].set()  # let the loop see the flag now
    await asyncio.wait_for(task, timeout=PERIOD * 4)


def test_without_wake_ups_it_resyncs_once_a_period() -> None:
    rt = _runtime()
    rec = Recorder(rt)
    asyncio.run(_run_for(rt, rec, PERIOD * 4.5))
    timer = [at for trigger, at in rec.runs if trigger == "timer"]
    assert 3 <= len(timer) <= 5, rec.runs
    gaps = [b - a for a, b in zip(timer, timer[1:], strict=False)]
    assert all(PERIOD * 0.9 <= g <= PERIOD * 2 for g in gaps), gaps


def test_a_wake_up_reconciles_at_once_and_postpones_the_resync() -> None:
    rt = _runtime()
    rec = Recorder(rt)

    async def wake_mid_period() -> None:
        await asyncio.sleep(PERIOD * 0.5)
        woken_at = time.monotonic()
        rt.wakeups[KEY].set()
        await asyncio.sleep(PERIOD * 0.8)  # past the first period's end, not a period after
        assert [t for t, _ in rec.runs] == ["wake"], rec.runs
        assert rec.runs[0][1] - woken_at < PERIOD / 3
        await asyncio.sleep(PERIOD * 0.5)  # now a period after the wake-up's reconcile

    asyncio.run(_run_for(rt, rec, 0, during=wake_mid_period))
    assert [t for t, _ in rec.runs[:2]] == ["wake", "timer"], rec.runs
    assert rec.runs[1][1] - rec.runs[0][1] >= PERIOD * 0.95


def test_a_reconcile_started_elsewhere_postpones_the_resync() -> None:
    """A change (kopf's on_change) reconciles the object too: the resync counts from it."""
    rt = _runtime()
    rec = Recorder(rt)

    async def changes() -> None:
        for _ in range(4):  # a change every two thirds of a period: no resync is due
            await asyncio.sleep(PERIOD * 0.66)
            resync.done(rt, KEY)
        assert rec.runs == []
        await asyncio.sleep(PERIOD * 1.3)

    asyncio.run(_run_for(rt, rec, 0, during=changes))
    assert [t for t, _ in rec.runs] == ["timer"], rec.runs


def test_a_wake_up_during_a_reconcile_is_kept() -> None:
    rt = _runtime()
    runs: list[str] = []

    async def slow(trigger: str) -> None:
        runs.append(trigger)
        if len(runs) == 1:
            rt.wakeups[KEY].set()  # an alert starts firing while this one runs
            await asyncio.sleep(0.05)
        resync.done(rt, KEY)

    async def go() -> None:
        stopped = Stopped()
        rt.wakeups[KEY] = event = asyncio.Event()
        event.set()
        task = asyncio.create_task(resync.run(rt, KEY, stopped, slow))
        await asyncio.sleep(PERIOD * 0.5)
        stopped.set = True
        event.set()
        await asyncio.wait_for(task, timeout=PERIOD * 4)

    asyncio.run(go())
    assert runs[:2] == ["wake", "wake"], runs


@pytest.mark.parametrize(
    "fail", [kopf.TemporaryError("apiserver: 503", delay=5), RuntimeError("a bug")]
)
def test_a_failed_reconcile_is_tried_again_and_a_crash_counted(
    fail: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resync, "CRASH_PAUSE_SECONDS", PERIOD)  # 5 s by default
    rt = _runtime()
    rec = Recorder(rt, fail=fail)
    asyncio.run(_run_for(rt, rec, PERIOD * 3.5))
    assert len(rec.runs) >= 2, rec.runs  # the loop goes on after a failure
    crashes = rt.metrics.errors.labels(kind="crash")._value.get()
    assert crashes == (len(rec.runs) if isinstance(fail, RuntimeError) else 0)

"""When a sample is judged: the due time the engine gives, the wake-up a poll brings, and a
reconcile that decides on the operator's own last write while the watch lags (no read)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import kopf
import pytest
from opworld import T0, body, healthy, run_until, spec

from modeldeploy.operator import engine, handlers, sampling
from modeldeploy.operator.analysis import Snapshot
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.kube import ApiClientKube
from modeldeploy.operator.metrics import OperatorMetrics
from modeldeploy.operator.runtime import Config, Runtime

PROM = "http://prometheus:9090"


def in_analysis() -> tuple[Any, RolloutStatus]:
    """v2 rolling out, sampled at least once in its analysis step."""
    world, status = healthy()
    sp = spec(version="v2", sha="b" * 64)
    status = run_until(
        world, sp, status, lambda s: s.analysis is not None and s.analysis.passed_samples > 0
    )
    return sp, status


def test_the_next_sample_is_due_a_slack_interval_after_the_last_one() -> None:
    sp, status = in_analysis()
    assert status.analysis is not None and status.analysis.last_sample_at is not None
    last = status.analysis.last_sample_at
    due = engine.next_sample_at(sp, status)
    assert due == last + timedelta(seconds=8)  # interval 10 s, slack 0.8
    assert engine.sample_due(sp, status, due)
    assert not engine.sample_due(sp, status, due - timedelta(milliseconds=1))


def test_nothing_is_due_without_a_rollout_being_sampled() -> None:
    _, status = healthy()
    assert engine.next_sample_at(spec(), status) is None
    assert engine.next_sample_at(spec(), RolloutStatus()) is None


def _runtime(**config: Any) -> Runtime:
    return Runtime(
        config=Config(**config),
        kube=object(),  # type: ignore[arg-type]
        metrics=OperatorMetrics.create(),
    )


def test_a_poll_wakes_exactly_the_rollouts_whose_sample_it_brings() -> None:
    rt = _runtime(prometheus_url=PROM)
    sp, status = in_analysis()
    due = engine.next_sample_at(sp, status)
    assert due is not None
    sampling.remember_due(rt, ("ml", "due"), sp, status)
    rt.due[("ml", "later")] = (PROM, due + timedelta(seconds=5))
    rt.due[("ml", "elsewhere")] = ("http://other:9090", due)
    events = {key: rt.wakeups.setdefault(key, asyncio.Event()) for key in rt.due}

    sampling.wake_due(rt, PROM, Snapshot(at=due - timedelta(seconds=1)))
    assert not any(e.is_set() for e in events.values()), "too early: nothing is due"
    sampling.wake_due(rt, PROM, Snapshot(at=due, error=f"{PROM}: timeout"))
    assert not any(e.is_set() for e in events.values()), "a failed poll brings no sample"
    sampling.wake_due(rt, PROM, Snapshot(at=due))
    assert {k for k, e in events.items() if e.is_set()} == {("ml", "due")}


def test_a_finished_rollout_is_no_longer_due() -> None:
    rt = _runtime(prometheus_url=PROM)
    sp, status = in_analysis()
    sampling.remember_due(rt, ("ml", "iris"), sp, status)
    assert ("ml", "iris") in rt.due
    world, healthy_status = healthy()
    sampling.remember_due(rt, ("ml", "iris"), spec(), healthy_status)
    assert rt.due == {}


def test_without_a_prometheus_nothing_is_due() -> None:
    rt = _runtime()
    sp, status = in_analysis()
    sampling.remember_due(rt, ("ml", "iris"), sp, status)
    assert rt.due == {}


class RecordingKube:
    """Status writes answer with a growing resourceVersion; a read would be recorded."""

    def __init__(self) -> None:
        self.conditional_on: list[str | None] = []
        self.gets = 0

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj

    async def has_api(self, group: str, version: str, plural: str) -> bool:
        return True

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self.gets += 1
        raise AssertionError("no read is needed")

    async def patch_status(
        self, kind: str, ns: str, name: str, patch: dict[str, Any], rv: str | None = None
    ) -> dict[str, Any]:
        self.conditional_on.append(rv)
        return {"metadata": {"resourceVersion": f"w{len(self.conditional_on)}"}}


def test_a_lagging_watch_decides_on_our_last_write_conditionally_without_a_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The body still shows the status before our write (the watch has not delivered it):
    the next reconcile starts from what we wrote, conditional on that write's
    resourceVersion, so a third writer in between still gets a 409 and a re-read."""
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **kw: None)
    kube = RecordingKube()
    rt = Runtime(config=Config(), kube=kube, metrics=OperatorMetrics.create())  # type: ignore[arg-type]
    rt.now = lambda: T0  # type: ignore[method-assign]
    first_body = body()
    first_body["metadata"].update(uid="u-1", resourceVersion="7")
    asyncio.run(handlers.reconcile(rt, kopf.Body({**first_body, "status": {}}), None, None, "t"))
    # The spec changes (generation 2: the status must change) while the watch still shows
    # the resourceVersion and status from before our first write.
    second_body = body(generation=2)
    second_body["metadata"].update(uid="u-1", resourceVersion="7")
    asyncio.run(handlers.reconcile(rt, kopf.Body({**second_body, "status": {}}), None, None, "t"))
    assert kube.gets == 0
    assert kube.conditional_on == ["7", "w1"]


class BlockingApi:
    """The official client's two calls; each waits until ``width`` calls are in flight."""

    def __init__(self, width: int) -> None:
        self.barrier = threading.Barrier(width, timeout=10)

    def param_serialize(self, method: str, path: str, **kw: Any) -> tuple[Any, ...]:
        return method, path, {}, None, None

    def call_api(self, method: str, url: str, **kw: Any) -> Any:
        self.barrier.wait()  # BrokenBarrierError if fewer calls can be in flight at once

        class Answer:
            status = 200
            reason = "OK"

            def read(self) -> bytes:
                return b'{"metadata": {"name": "x"}}'

        return Answer()


def test_the_client_keeps_many_calls_in_flight_at_once() -> None:
    """Calls wait on the apiserver: 20 at once must not queue behind a handful of threads
    (asyncio's default pool has cpu_count + 4, 6 on two cores)."""
    kube = ApiClientKube(BlockingApi(20))

    async def main() -> list[Any]:
        return await asyncio.gather(*(kube.get("Pod", "ml", f"p{i}") for i in range(20)))

    answers = asyncio.run(main())
    assert all(a == {"metadata": {"name": "x"}} for a in answers)

"""The client's lanes: a rollback's calls (``lanes.urgent``), and the calls made on behalf of
a ModelDeployment whose alert just fired (``hurried``), take the next free slot before every
routine call already waiting; a cancelled waiter gives its turn back."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from modeldeploy.operator.lanes import URGENT, Lanes, calls_for, urgent


async def _hold(lanes: Lanes, name: str, order: list[str], release: asyncio.Event) -> None:
    async with lanes.slot():
        order.append(name)
        await release.wait()


def _start(lanes: Lanes, name: str, order: list[str], go: asyncio.Event) -> asyncio.Task[None]:
    return asyncio.create_task(_hold(lanes, name, order, go))


def test_urgent_callers_go_before_routine_ones_already_waiting() -> None:
    async def main() -> list[str]:
        lanes, order, release = Lanes(1), list[str](), asyncio.Event()
        busy = asyncio.Event()
        first = _start(lanes, "busy", order, busy)
        await asyncio.sleep(0)
        routine = [_start(lanes, f"r{i}", order, release) for i in range(3)]
        await asyncio.sleep(0)
        with urgent():
            rollback = _start(lanes, "rollback", order, release)
        await asyncio.sleep(0)
        assert lanes.waiting == (1, 3)
        release.set()
        busy.set()
        await asyncio.gather(first, *routine, rollback)
        assert lanes.waiting == (0, 0)
        return order

    assert asyncio.run(main()) == ["busy", "rollback", "r0", "r1", "r2"]


def test_a_hurried_callers_waiting_calls_go_first_from_the_moment_it_is_hurried() -> None:
    """The reconcile holding an object's lock was queued as routine; once that object's alert
    fires (its key joins ``hurried``) its calls go next, so the woken reconcile gets the lock
    sooner."""

    async def main() -> list[str]:
        hurried: set[Hashable] = set()
        lanes, order, go, busy = Lanes(1, hurried), list[str](), asyncio.Event(), asyncio.Event()
        first = _start(lanes, "busy", order, busy)
        await asyncio.sleep(0)
        tasks = []
        for owner in ("a", "b", "c"):
            with calls_for(("ml", owner)):
                tasks.append(_start(lanes, owner, order, go))
        await asyncio.sleep(0)
        assert lanes.waiting == (0, 3)
        hurried.add(("ml", "c"))
        assert lanes.waiting == (1, 2)
        go.set()
        busy.set()
        await asyncio.gather(first, *tasks)
        return order

    assert asyncio.run(main()) == ["busy", "c", "a", "b"]


def test_a_cancelled_waiter_gives_its_turn_back() -> None:
    async def main() -> list[str]:
        lanes, order, go = Lanes(1), list[str](), asyncio.Event()
        first = _start(lanes, "busy", order, go)
        await asyncio.sleep(0)
        gone = _start(lanes, "gone", order, go)
        after = _start(lanes, "after", order, go)
        await asyncio.sleep(0)
        gone.cancel()
        go.set()
        await asyncio.gather(first, after)
        assert gone.cancelled()
        # the slot is free again: a new caller gets it at once
        await asyncio.wait_for(_hold(lanes, "late", order, go), timeout=1)
        return order

    assert asyncio.run(main()) == ["busy", "after", "late"]


def test_a_waiter_cancelled_just_as_it_was_handed_the_slot_gives_it_back() -> None:
    async def main() -> None:
        lanes, order, go = Lanes(1), list[str](), asyncio.Event()
        go.set()
        async with lanes.slot():
            waiter = _start(lanes, "waiter", order, go)
            await asyncio.sleep(0)
            assert lanes.waiting == (0, 1)
        waiter.cancel()  # the slot was handed to it on release; it has not run since
        await asyncio.gather(waiter, return_exceptions=True)
        assert waiter.cancelled() and order == []
        await asyncio.wait_for(_hold(lanes, "late", order, go), timeout=1)
        assert order == ["late"]

    asyncio.run(main())


def test_the_urgent_mark_is_scoped_to_its_block() -> None:
    assert URGENT.get() is False
    with urgent():
        assert URGENT.get() is True
        with urgent(False):
            assert URGENT.get() is False
        assert URGENT.get() is True
    assert URGENT.get() is False

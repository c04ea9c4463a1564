"""Who goes first to the apiserver: a rollback's calls before the routine ones.

The client keeps ``slots`` calls in flight. At 500 ModelDeployments mid-rollout hundreds of
routine calls (status writes, applies) wait for a slot, and a rollback's writes used to queue
behind all of them: over a minute from the alert firing to weight 0. Here a freed slot goes
to the oldest *urgent* waiter, else to the oldest one.

A call is urgent when it is made under ``urgent()`` (a reconcile that decided a rollback, or
that an alert woke), or on behalf of a ModelDeployment (``calls_for``) in ``hurried``: one
whose alert just started firing, while its woken reconcile still waits for the object's lock,
so that the reconcile holding the lock finishes sooner too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Container, Hashable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

URGENT: ContextVar[bool] = ContextVar("modeldeploy_kube_urgent", default=False)
CALLER: ContextVar[Hashable | None] = ContextVar("modeldeploy_kube_caller", default=None)


@contextmanager
def urgent(on: bool = True) -> Iterator[None]:
    """The client calls made inside (when ``on``) go before every routine one waiting."""
    token = URGENT.set(on)
    try:
        yield
    finally:
        URGENT.reset(token)


@contextmanager
def calls_for(key: Hashable) -> Iterator[None]:
    """The client calls made inside are on behalf of ``key`` (a ModelDeployment)."""
    token = CALLER.set(key)
    try:
        yield
    finally:
        CALLER.reset(token)


@dataclass
class _Waiter:
    key: Hashable | None
    urgent: bool
    handed: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Lanes:
    """At most ``slots`` calls in flight; a freed slot goes to the oldest urgent waiter,
    else to the oldest one. (The thread pool behind it has as many threads, so its own
    first-in-first-out queue never holds a call.)"""

    def __init__(self, slots: int, hurried: Container[Hashable] = frozenset()) -> None:
        self._free = slots
        self._hurried = hurried
        self._waiting: deque[_Waiter] = deque()

    def _is_urgent(self, w: _Waiter) -> bool:
        return w.urgent or (w.key is not None and w.key in self._hurried)

    @property
    def waiting(self) -> tuple[int, int]:
        """(urgent, routine) callers waiting for a slot now."""
        hurry = sum(1 for w in self._waiting if self._is_urgent(w))
        return hurry, len(self._waiting) - hurry

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for one call (the caller and urgency come from the context)."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            waiter = _Waiter(CALLER.get(), URGENT.get())
            self._waiting.append(waiter)
            try:
                await waiter.handed
            except asyncio.CancelledError:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
                elif waiter.handed.done() and not waiter.handed.cancelled():
                    self._release()  # handed over just as the caller was cancelled
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting and self._waiting[0].handed.done():
            self._waiting.popleft()  # cancelled while waiting
        nxt = next((w for w in self._waiting if self._is_urgent(w)), None)
        if nxt is None and self._waiting:
            nxt = self._waiting[0]
        if nxt is None:
            self._free += 1
            return
        self._waiting.remove(nxt)
        nxt.handed.set_result(None)

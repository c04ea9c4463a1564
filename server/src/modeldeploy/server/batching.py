"""Adaptive micro-batching: requests that arrive together are predicted together.

A scikit-learn call costs a fixed few hundred microseconds whatever the number of rows
(150 trees are walked once per call), so predicting concurrent requests one by one caps a
server at a few thousand rows per second. The batcher queues requests; one drain task
takes everything queued (up to ``max_rows``), predicts it with one call, and hands each
request its slice. While a batch is being predicted new requests queue up, so the batch
size follows the load by itself. Before a call the drainer also yields to the event loop
for as long as new requests keep arriving, bounded by ``max_wait`` seconds; a lone request
passes after two idle loop turns (a few microseconds), so low load pays no latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeAlias, TypeVar

import numpy as np

from modeldeploy.server.arrays import FloatArray

R = TypeVar("R")
Rows: TypeAlias = FloatArray | list[list[Any]]

# Loop turns without a new arrival after which the drainer stops waiting: a request needs
# one turn for its bytes to be read and one for its handler to run.
_IDLE_TURNS = 2


class Slice(NamedTuple, Generic[R]):
    """One request's part of a batch result: rows ``start:stop`` of ``result`` (a named
    tuple: one is made per request, at half the cost of a frozen dataclass)."""

    result: R
    start: int
    stop: int


class MicroBatcher(Generic[R]):
    """Collects row blocks from concurrent requests and predicts them in one call."""

    def __init__(
        self,
        predict: Callable[[Any], R],
        max_rows: int = 256,
        max_wait: float = 0.002,
        stack: Callable[[list[Rows]], Any] | None = None,
    ) -> None:
        """``stack`` turns a batch's row blocks into what ``predict`` takes (by default one
        float64 array)."""
        self._predict = predict
        self._stack = stack or _stack
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._pending: list[tuple[Rows, asyncio.Future[Slice[R]]]] = []
        self._pending_rows = 0
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, rows: Rows) -> Slice[R]:
        """Queue ``rows`` (an array, or a list of rows of numbers) and wait for their
        predictions."""
        loop = self._loop
        if loop is None or not loop.is_running():
            # Looked up once, not per request: on Python 3.11 each lookup is a getpid()
            # system call (asyncio checks the loop was not inherited across a fork).
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Slice[R]] = loop.create_future()
        self._pending.append((rows, future))
        self._pending_rows += len(rows)
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await future

    async def _gather(self) -> None:
        """Yield to the loop while requests keep arriving, within ``max_wait``."""
        deadline = time.perf_counter() + self.max_wait
        idle = 0
        while self._pending_rows < self.max_rows and idle < _IDLE_TURNS:
            before = len(self._pending)
            await asyncio.sleep(0)
            idle = idle + 1 if len(self._pending) == before else 0
            if time.perf_counter() >= deadline:
                break

    def _take(self) -> list[tuple[Rows, asyncio.Future[Slice[R]]]]:
        """The oldest requests up to ``max_rows`` (always at least one)."""
        taken, rows = 0, 0
        for block, _ in self._pending:
            if taken and rows + len(block) > self.max_rows:
                break
            taken += 1
            rows += len(block)
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        self._pending_rows -= rows
        return batch

    async def _drain(self) -> None:
        try:
            while self._pending:
                await self._gather()
                batch = self._take()
                try:
                    result = self._predict(self._stack([rows for rows, _ in batch]))
                except Exception as exc:  # handed to every waiting request
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for rows, future in batch:
                    stop = start + len(rows)
                    if not future.done():
                        future.set_result(Slice(result, start, stop))
                    start = stop
        finally:
            self._draining = False


def _stack(blocks: list[Rows]) -> FloatArray:
    """One float64 array of all the rows of a batch, built once."""
    if len(blocks) == 1:
        return np.asarray(blocks[0], dtype=np.float64)
    if all(type(b) is list for b in blocks):
        return np.array([row for block in blocks for row in block], dtype=np.float64)
    return np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks])

"""The labelled-data store's writer: labelled rows in memory, rotated to Parquet files.

The event loop only appends (``add``: a lock, a deque append, no conversion, no I/O); one
thread does everything else. It rotates when the rows waiting reach ``rows_per_file`` or the
oldest has waited ``max_age`` seconds, and ``close`` writes what is left (the server calls it
on shutdown). A rotation writes everything waiting, one file per ``rows_per_file`` rows and
per UTC day, taking one file's rows at a time: those are "in flight", the rest may still be
dropped.

Bounds: at most ``max_pending`` rows wait in memory. When the sink fails the rows stay and the
next rotation (``max_age`` later) tries again; beyond the bound the oldest rows not in flight
are dropped and counted. A failure is logged once per change of its message (and its end
once): the message names the location and the file, never a feature, a label or a secret.

Retention: after a rotation that wrote everything, at most every ``sweep_every`` seconds, the
writer deletes this model's files older than ``retention`` (by their first row's time). It
deletes every writer's expired files, not only its own: pods of a Deployment come and go
with new names, and a writer that cleaned only its own files would keep every replaced pod's
files forever.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from modeldeploy.server import contract as c
from modeldeploy.server.contract import retrain as r
from modeldeploy.server.labelled.format import Labelled, Layout, day_of, first_ms_of, is_day
from modeldeploy.server.labelled.format import file_key as make_key
from modeldeploy.server.labelled.format import segment as safe_segment
from modeldeploy.server.labelled.sinks import LabelledDataError, Sink

log = logging.getLogger(__name__)

DAY = 86400.0


@dataclass(frozen=True)
class Limits:
    """How big files get, how long rows wait, how much memory, how long files live."""

    rows_per_file: int = 5000
    max_age: float = 60.0  # seconds
    max_pending: int = 50_000
    retention: float = 7 * DAY  # seconds
    sweep_every: float = 600.0  # seconds between retention sweeps

    def __post_init__(self) -> None:
        if self.rows_per_file < 1 or self.max_age <= 0 or self.retention <= 0:
            raise ValueError("rows per file, age and retention must be positive")
        if self.max_pending < self.rows_per_file:
            raise ValueError(
                f"max pending rows ({self.max_pending}) must be at least the rows per file "
                f"({self.rows_per_file})"
            )


class _Metrics:
    def __init__(self, registry: CollectorRegistry, labels: tuple[str, str, str]) -> None:
        def counter(name: str, doc: str) -> Any:
            family = Counter(name, doc, c.COMMON_LABELS, registry=registry)
            return family.labels(*labels)

        self.rows = counter(c.METRIC_LABELLED_ROWS_WRITTEN, "Labelled rows written to the store")
        self.files = counter(c.METRIC_LABELLED_FILES_WRITTEN, "Parquet files written")
        self.failures = counter(
            c.METRIC_LABELLED_WRITE_FAILURES, "Failed writes or deletes in the store"
        )
        self.dropped = counter(
            c.METRIC_LABELLED_ROWS_DROPPED, "Labelled rows dropped: the store failed, memory full"
        )


class LabelledWriter:
    """Writes one model server's labelled rows under ``MODEL/DATE/POD-FIRSTMS-SEQ.parquet``."""

    def __init__(
        self,
        sink: Sink,
        layout: Layout,
        *,
        model: str,
        version: str,
        role: str,
        pod: str,
        limits: Limits | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.layout = layout
        self.model, self.version, self.role, self.pod = model, version, role, pod
        self.limits = limits or Limits()
        self.clock = clock
        self.metrics = _Metrics(registry or CollectorRegistry(), (model, version, role))
        self._cond = threading.Condition()
        self._pending: deque[tuple[int, Labelled]] = deque()  # (chunk number, chunk)
        self._pending_rows = 0
        self._next_chunk = 0
        self._in_flight = -1  # chunks numbered up to this are being written
        self._retry_at = 0.0
        self._seq = 0
        self._last_sweep: float | None = None
        self._error = ""  # the last failure's message, "" while writes work
        self._dropping = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- the event loop's side ----------------------------------------------------------

    def add(self, chunk: Labelled) -> None:
        """Queue one ``/feedback``'s rows (cheap: no conversion, no I/O)."""
        n = len(chunk.labels)
        limits = self.limits
        with self._cond:
            self._pending.append((self._next_chunk, chunk))
            self._next_chunk += 1
            self._pending_rows += n
            if self._pending_rows > limits.max_pending:
                self._drop_oldest()
            if self._pending_rows >= limits.rows_per_file:
                self._cond.notify()

    def _drop_oldest(self) -> None:
        """Drop the oldest chunks not in flight until the bound holds (lock held)."""
        pending, dropped = self._pending, 0
        keep: list[tuple[int, Labelled]] = []
        while self._pending_rows > self.limits.max_pending and pending:
            number, chunk = pending.popleft()
            if number <= self._in_flight:
                keep.append((number, chunk))
                continue
            self._pending_rows -= len(chunk.labels)
            dropped += len(chunk.labels)
        pending.extendleft(reversed(keep))
        if dropped:
            self.metrics.dropped.inc(dropped)
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "labelled data: more than %d rows wait for %s; dropping the oldest",
                    self.limits.max_pending,
                    self.sink.where,
                )

    @property
    def pending_rows(self) -> int:
        with self._cond:
            return self._pending_rows

    # --- the thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="labelled-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread and write what is waiting (one attempt per file)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self.rotate()

    def _due_in(self, now: float) -> float:
        """Seconds until the next rotation is due (0: now); lock held."""
        if not self._pending:
            return self.limits.max_age
        wait = max(self._retry_at - now, 0.0)
        if self._pending_rows >= self.limits.rows_per_file:
            return wait
        age = now - self._pending[0][1].labelled_at
        return max(wait, self.limits.max_age - age)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (due := self._due_in(self.clock())) > 0:
                    self._cond.wait(min(due, self.limits.max_age))
                if self._stopping:
                    return
            try:
                self.rotate()
            except Exception:  # a bug: say so, keep the thread (and the rows) alive
                log.exception("labelled data: rotation failed")
                with self._cond:
                    self._retry_at = self.clock() + self.limits.max_age

    def rotate(self) -> int:
        """Write every row waiting now, one file at a time; returns the files written. Stops
        at the first failure (the rest waits for the next rotation)."""
        with self._cond:
            last = self._next_chunk - 1
        files = 0
        while True:
            with self._cond:
                piece = self._next_piece(last)
                if not piece:
                    break
                self._in_flight = piece[-1][0]
            try:
                self._write([chunk for _, chunk in piece])
            except LabelledDataError as exc:
                self.metrics.failures.inc()
                self._failed(exc)
                with self._cond:
                    self._in_flight = -1
                    self._retry_at = self.clock() + self.limits.max_age
                    if self._pending_rows > self.limits.max_pending:
                        self._drop_oldest()
                return files
            except Exception as exc:  # a bug: these rows can never be written, the rest can
                rows = sum(len(chunk.labels) for _, chunk in piece)
                # The type only: an exception's message may quote a value of a row.
                log.error("labelled data: dropping %d rows (%s)", rows, type(exc).__name__)
                self.metrics.failures.inc()
                self.metrics.dropped.inc(rows)
            else:
                files += 1
            with self._cond:
                for _ in piece:
                    _, chunk = self._pending.popleft()
                    self._pending_rows -= len(chunk.labels)
                self._in_flight = -1
        with self._cond:
            self._retry_at = 0.0
            self._dropping = False
        if files:
            self._recovered()
            self._sweep()
        return files

    def _next_piece(self, last: int) -> list[tuple[int, Labelled]]:
        """The oldest chunks numbered up to ``last`` that make one file: at most
        ``rows_per_file`` rows (a bigger chunk alone), all of one UTC day (lock held)."""
        piece: list[tuple[int, Labelled]] = []
        rows, day = 0, ""
        for number, chunk in self._pending:
            if number > last:
                break
            n = len(chunk.labels)
            chunk_day = day_of(int(chunk.labelled_at * 1000))
            if piece and (rows + n > self.limits.rows_per_file or chunk_day != day):
                break
            piece.append((number, chunk))
            rows, day = rows + n, chunk_day
        return piece

    def _write(self, chunks: list[Labelled]) -> None:
        frame = self.layout.frame(chunks, self.version, self.role)
        first_ms = int(frame[r.COLUMN_TIME].iloc[0].value // 1_000_000)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        key = make_key(self.model, self.pod, first_ms, self._seq)
        self.sink.put(key, buffer.getvalue())
        self._seq += 1
        self.metrics.files.inc()
        self.metrics.rows.inc(len(frame))

    def _failed(self, exc: LabelledDataError) -> None:
        if exc.cause != self._error:
            self._error = exc.cause
            log.warning(
                "labelled data: %s; keeping up to %d rows in memory, retrying every %gs",
                exc,
                self.limits.max_pending,
                self.limits.max_age,
            )

    def _recovered(self) -> None:
        if self._error:
            self._error = ""
            log.info("labelled data: writing to %s works again", self.sink.where)

    def _sweep(self) -> None:
        """Delete this model's files older than the retention (any writer's)."""
        now = self.clock()
        if self._last_sweep is not None and now - self._last_sweep < self.limits.sweep_every:
            return
        self._last_sweep = now
        cutoff_ms = int((now - self.limits.retention) * 1000)
        cutoff_day = day_of(cutoff_ms)
        model = safe_segment(self.model) + "/"
        try:
            expired: list[str] = []
            for day in self.sink.folders(model):
                if not is_day(day) or day > cutoff_day:
                    continue
                for key in self.sink.keys(f"{model}{day}/"):
                    first = first_ms_of(key)
                    if first is not None and (day < cutoff_day or first < cutoff_ms):
                        expired.append(key)
            if expired:
                self.sink.delete(expired)
                log.info("labelled data: deleted %d files past the retention", len(expired))
        except LabelledDataError as exc:
            self.metrics.failures.inc()
            self._failed(exc)

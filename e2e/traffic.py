"""A bounded traffic generator for the model Service of a ModelDeployment.

It sends request rows from a rows provider (by default the example model's synthetic
requests, ``server.examples``; ``dataframe_rows`` for a user's model, whose rows are JSON
records of string, boolean, integer and float columns) to one address inside the local
cluster (a Service ClusterIP, a pod or the node) or to loopback, and nothing else: the
address is checked against the cluster's own ranges before the first request. Every request
is counted with the version that answered it, so a test can prove that no request was lost
while traffic moved between versions. Inputs can be shifted on demand (drift), and a bounded
sample of the answers can be kept with their rows, to check them against the model itself.

Each request opens its own connection: the ``replicas`` provider weights traffic by the share
of pods behind one Service, and kube-proxy picks a pod per connection, so kept-alive
connections would pin the traffic to whichever pod answered first.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from e2e.cluster import config
from modeldeploy.server import contract as c

# Addresses traffic may go to: loopback and the ranges of the network namespaces the harness
# made (the node's link, pods, Services). Nothing else is ever contacted.
ALLOWED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "::1/128", config.LINK_CIDR, config.CLUSTER_CIDR, config.SERVICE_CIDR)
)

# No request is retried by default: every failed attempt (refused, reset, timed out, not a
# 200) is a lost request, and the end-to-end tests require none. A caller may pass
# ``retries`` (the helper tests do, to check the counting).
RETRIES = 0
RETRY_PAUSE = 0.2
LOST_SHOWN = 20  # lost requests a tally lists with their time and error

Record = dict[str, Any]


class Rows(Protocol):
    """A rows provider: ``count`` request rows (JSON records by feature name), deterministic
    in ``seed``; ``shifted`` asks for the drifted inputs (a provider may have none)."""

    def __call__(self, count: int, seed: int, shifted: bool) -> list[Record]: ...


def example_rows(count: int, seed: int, shifted: bool) -> list[Record]:
    """The example incident predictor's synthetic requests (``server.examples``)."""
    from modeldeploy.server.examples import records_for

    return records_for(count, seed=seed, shifted=shifted)


def dataframe_rows(
    make: Callable[[int, int], Any],
    shifted: Callable[[int, int], Any] | None = None,
    drop: tuple[str, ...] = (),
) -> Rows:
    """Rows from a user's data: ``make(count, seed)`` returns a pandas DataFrame (string,
    boolean, integer and float columns); ``drop`` names columns that are not features (the
    target). ``shifted`` makes the drifted inputs, if the test has any."""

    def rows(count: int, seed: int, shift: bool) -> list[Record]:
        if shift and shifted is None:
            raise ValueError("this rows provider has no shifted inputs")
        frame = (shifted if shift and shifted is not None else make)(count, seed)
        return records_of(frame.drop(columns=list(drop)))

    return rows


def records_of(frame: Any) -> list[Record]:
    """A DataFrame's rows as JSON records: Python str, bool, int and float values."""
    return [
        {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def check_address(host: str) -> str:
    """``host`` if it is loopback or inside the cluster's own networks, else ValueError."""
    addr = ipaddress.ip_address(host)
    if not any(addr in net for net in ALLOWED_NETWORKS):
        raise ValueError(f"{host} is outside the local cluster's networks and loopback")
    return host


@dataclass
class Second:
    """What one second of traffic saw: answers per version and their prediction sums."""

    answers: Counter[str] = field(default_factory=Counter)
    score_sum: dict[str, float] = field(default_factory=dict)
    score_n: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Answered:
    """One kept answer: the version that gave it, the rows sent and the JSON answer."""

    version: str
    records: list[Record]
    answer: dict[str, Any]


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    lost: int = 0
    retried: int = 0
    rows: int = 0
    by_version: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # when each lost request was sent (seconds since the traffic started) and why, so a
    # failing test says which moment of the rollout cost it
    lost_at: list[tuple[float, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "answered": self.answered,
            "lost": self.lost,
            "retried": self.retried,
            "by_version": dict(self.by_version),
            "errors": dict(self.errors),
            "lost_at": self.lost_at[:LOST_SHOWN],
        }


def _score(answer: dict[str, Any]) -> list[float]:
    """The positive-class probability per row (what the server's prediction metrics sum)."""
    probs = answer.get("probabilities")
    if probs:
        return [float(p[-1]) for p in probs]
    return [float(v) for v in answer.get("predictions") or []]


def predict(
    host: str,
    records: list[Record],
    port: int = c.DEFAULT_PORT,
    timeout: float = 5.0,
    hostname: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """One ``POST /predict`` of ``records`` to ``host`` (checked like the generator's):
    the version that answered and its JSON answer; an HTTP error raises. ``hostname`` is
    the Host header (a gateway routes by it); the connection still goes to ``host``."""
    body = json.dumps({"instances": records}).encode()
    return _request(check_address(host), port, body, timeout, hostname)


def wait_answering(
    host: str, port: int = c.DEFAULT_PORT, timeout: float = 60.0, rows: Rows = example_rows
) -> str:
    """Poll ``host`` with one small request every 0.2 s until it answers (bounded in
    ``timeout``): the version that answered. A Service's address works only once kube-proxy
    has programmed it, a moment after the Service and its Ready pods exist."""
    body = json.dumps({"instances": rows(1, 0, False)}).encode()
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            version, _ = _request(check_address(host), port, body, timeout=2.0)
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if version:
                return version
            last = "no version header"
        time.sleep(0.2)
    raise TimeoutError(f"{host}:{port} did not answer within {timeout:.0f} s ({last})")


def _request(
    host: str, port: int, body: bytes, timeout: float, hostname: str | None = None
) -> tuple[str, dict[str, Any]]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"content-type": "application/json", "connection": "close"}
    if hostname:
        headers["host"] = hostname
    try:
        conn.request("POST", c.PREDICT_PATH, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise http.client.HTTPException(f"HTTP {resp.status}")
        return resp.getheader(c.MODEL_VERSION_HEADER) or "", json.loads(data)
    finally:
        conn.close()


class Traffic:
    """Steady POST /predict traffic in a background thread, bounded in count and time."""

    def __init__(
        self,
        host: str,
        port: int = c.DEFAULT_PORT,
        rate: float = 20.0,
        batch: int = 4,
        max_requests: int = 20_000,
        max_seconds: float = 900.0,
        seed: int = 0,
        timeout: float = 2.0,
        rows: Rows = example_rows,
        keep_answers: int = 0,
        retries: int = RETRIES,
        hostname: str | None = None,
        on_answer: Callable[[list[Record], dict[str, Any]], None] | None = None,
    ) -> None:
        """``retries`` (default none): how often a failed attempt is sent again before the
        request counts as lost. ``hostname``: the Host header
        of every request (a gateway's routes match on it). ``on_answer``: called with the
        rows and the answer of each answered request, in the traffic's thread (a labeller
        posting ``/feedback``: ``e2e.labeller``)."""
        self.host, self.port = check_address(host), port
        self.hostname = hostname
        self.retries = retries
        self.rate, self.batch, self.timeout = rate, batch, timeout
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self._rows, self._seed, self._pool = rows, seed, 4096
        self._normal = rows(self._pool, seed, False)
        self._shifted: list[Record] | None = None
        self.shifted = False
        # up to ``keep_answers`` answers of each version, with their rows (the first ones)
        self.keep_answers = keep_answers
        self.answers: list[Answered] = []
        self.tally = Tally()
        self.seconds: dict[int, Second] = {}
        self.started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.mirror: tuple[str, int] | None = None
        self.mirrored = Tally()
        self.on_answer = on_answer

    def mirror_to(self, host: str | None, port: int = c.DEFAULT_PORT) -> None:
        """Also send each request to ``host`` (a shadow), ignoring its answer except to count
        it: what a router's request mirroring does, for providers that have no router."""
        self.mirror = None if host is None else (check_address(host), port)

    # ------------------------------------------------------------ control

    def start(self) -> Traffic:
        self.started = time.time()
        self._thread = threading.Thread(target=self._loop, name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Tally:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout * (self.retries + 2))
        return self.tally

    def clock(self) -> float:
        """Seconds since the traffic started: the clock of ``Tally.lost_at``."""
        return round(time.time() - self.started, 1)

    def shift(self, on: bool = True) -> None:
        """Send the shifted inputs (drift) from the next request on."""
        if on and self._shifted is None:
            self._shifted = self._rows(self._pool, self._seed + 1, True)
        self.shifted = on

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def snapshot(self) -> Tally:
        with self._lock:
            return Tally(
                sent=self.tally.sent,
                answered=self.tally.answered,
                lost=self.tally.lost,
                retried=self.tally.retried,
                rows=self.tally.rows,
                by_version=Counter(self.tally.by_version),
                errors=Counter(self.tally.errors),
                lost_at=list(self.tally.lost_at),
            )

    def recent_versions(self, seconds: int = 10) -> Counter[str]:
        """Answers per version over the last ``seconds`` whole seconds."""
        now = int(time.time())
        out: Counter[str] = Counter()
        with self._lock:
            for t in range(now - seconds, now):
                if t in self.seconds:
                    out.update(self.seconds[t].answers)
        return out

    # ------------------------------------------------------------ the loop

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        period = 1.0 / self.rate
        next_at = time.monotonic()
        i = 0
        while (
            not self._stop.is_set()
            and time.monotonic() < deadline
            and self.tally.sent < self.max_requests
        ):
            pool = self._shifted if self.shifted and self._shifted else self._normal
            start = (i * self.batch) % (len(pool) - self.batch)
            self._one(pool[start : start + self.batch])
            i += 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()  # behind: do not burst to catch up

    def _one(self, records: list[Record]) -> None:
        body = json.dumps({"instances": records}).encode()
        if self.mirror is not None:
            self._shadow(body, *self.mirror)
        with self._lock:
            self.tally.sent += 1
        sent_at = self.clock()
        last, detail = "", ""
        for attempt in range(self.retries + 1):
            try:
                version, answer = self._post(body)
            except (OSError, http.client.HTTPException) as exc:
                last, detail = type(exc).__name__, f"{type(exc).__name__}: {exc}"
            else:
                if version:
                    self._record(version, answer, retried=attempt > 0, records=records)
                    if self.on_answer is not None:
                        self.on_answer(records, answer)
                    return
                last = detail = "no version"
            if attempt < self.retries:
                # Even when stopping: a request sent while the traffic was on is answered or
                # lost on its own merits, not because the generator was told to stop.
                time.sleep(RETRY_PAUSE)
        with self._lock:
            self.tally.lost += 1
            self.tally.errors[last] += 1
            self.tally.lost_at.append((sent_at, detail))

    def _shadow(self, body: bytes, host: str, port: int) -> None:
        try:
            version, _ = self._post(body, host, port)
        except (OSError, http.client.HTTPException) as exc:
            version = ""
            self.mirrored.errors[type(exc).__name__] += 1
        with self._lock:
            self.mirrored.sent += 1
            if version:
                self.mirrored.answered += 1
                self.mirrored.by_version[version] += 1

    def _post(
        self, body: bytes, host: str | None = None, port: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        if host is not None:  # a mirror copy goes to a Service directly
            return _request(host, port or self.port, body, self.timeout)
        return _request(self.host, self.port, body, self.timeout, self.hostname)

    def _record(
        self, version: str, answer: dict[str, Any], retried: bool, records: list[Record]
    ) -> None:
        scores = _score(answer)
        now = int(time.time())
        with self._lock:
            if sum(a.version == version for a in self.answers) < self.keep_answers:
                self.answers.append(Answered(version, records, answer))
            t = self.tally
            t.answered += 1
            t.retried += int(retried)
            t.rows += len(scores)
            t.by_version[version] += 1
            sec = self.seconds.setdefault(now, Second())
            sec.answers[version] += 1
            sec.score_sum[version] = sec.score_sum.get(version, 0.0) + sum(scores)
            sec.score_n[version] += len(scores)

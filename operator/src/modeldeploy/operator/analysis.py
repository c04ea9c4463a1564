"""Prometheus as the operator asks it: one batched poll per interval, plus PromQL checks.

The poller asks each Prometheus (the operator's default and any ``analysis.prometheusURL``)
twice per interval, however many ModelDeployments it watches: ``/api/v1/alerts`` (every
active alert with its labels and value; the firing ones with a ``modeldeployment`` label are
indexed by (namespace, modeldeployment, role)) and one query for which roles Prometheus
scrapes at all (so "nothing fires" can be told from "no data"). Handlers read the latest
snapshot and turn it into an ``AnalysisSample`` for the pure engine. A failed poll is kept
as a snapshot with ``error`` set, which the engine treats as inconclusive.

Only the optional per-ModelDeployment checks cost one query each.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from modeldeploy.operator.model import AnalysisSample, Check, CheckResult

log = logging.getLogger("modeldeploy.operator.analysis")

SCRAPED_QUERY = 'count by (namespace, modeldeployment, role) (up{modeldeployment!=""} == 1)'
ALERT_LABEL = "modeldeployment"

Key = tuple[str, str]  # (namespace, modeldeployment)


class PrometheusError(Exception):
    """Prometheus could not answer (unreachable, HTTP error, bad query)."""


@dataclass
class Snapshot:
    """What one Prometheus said at ``at`` about every ModelDeployment."""

    at: datetime
    error: str = ""
    firing: dict[Key, dict[str, list[tuple[str, float]]]] = field(default_factory=dict)
    scraped: dict[Key, set[str]] = field(default_factory=dict)

    def sample(
        self, namespace: str, name: str, checks: tuple[CheckResult, ...] = ()
    ) -> AnalysisSample:
        key = (namespace, name)
        return AnalysisSample(
            at=self.at,
            error=self.error,
            firing={role: tuple(alerts) for role, alerts in self.firing.get(key, {}).items()},
            scraped=frozenset(self.scraped.get(key, set())),
            checks=checks,
        )


def _value(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def index_alerts(alerts: Iterable[dict[str, Any]]) -> dict[Key, dict[str, list[tuple[str, float]]]]:
    """Firing alerts by (namespace, modeldeployment) then role: [(alertname, value)]."""
    out: dict[Key, dict[str, list[tuple[str, float]]]] = {}
    for alert in alerts:
        labels = alert.get("labels") or {}
        if alert.get("state") != "firing" or not labels.get(ALERT_LABEL):
            continue
        key = (labels.get("namespace", ""), labels[ALERT_LABEL])
        role = labels.get("role", "")
        out.setdefault(key, {}).setdefault(role, []).append(
            (labels.get("alertname", "?"), _value(alert.get("value")))
        )
    for roles in out.values():
        for alerts_ in roles.values():
            alerts_.sort()
    return out


def index_scraped(series: Iterable[dict[str, Any]]) -> dict[Key, set[str]]:
    out: dict[Key, set[str]] = {}
    for s in series:
        metric = s.get("metric") or {}
        if metric.get(ALERT_LABEL):
            out.setdefault((metric.get("namespace", ""), metric[ALERT_LABEL]), set()).add(
                metric.get("role", "")
            )
    return out


class PrometheusClient:
    """The two endpoints of Prometheus's HTTP API the operator uses."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float = 10.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _get(self, url: str, params: dict[str, str] | None = None) -> Any:
        try:
            async with self._session.get(url, params=params, timeout=self._timeout) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or body.get("status") != "success":
                    raise PrometheusError(
                        f"HTTP {resp.status}: {body.get('error') or body.get('status')}"
                    )
                return body.get("data")
        except PrometheusError:
            raise
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise PrometheusError(f"{type(exc).__name__}: {exc or 'timeout'}") from None

    async def alerts(self, base: str) -> list[dict[str, Any]]:
        data = await self._get(base.rstrip("/") + "/api/v1/alerts")
        return list((data or {}).get("alerts") or [])

    async def query(self, base: str, promql: str) -> tuple[str, Any]:
        data = await self._get(base.rstrip("/") + "/api/v1/query", {"query": promql})
        return data.get("resultType", ""), data.get("result")

    async def snapshot(self, base: str, now: datetime) -> Snapshot:
        try:
            alerts, (_, scraped) = await asyncio.gather(
                self.alerts(base), self.query(base, SCRAPED_QUERY)
            )
        except PrometheusError as exc:
            return Snapshot(at=now, error=f"{base}: {exc}")
        return Snapshot(at=now, firing=index_alerts(alerts), scraped=index_scraped(scraped))

    async def check(
        self, base: str, check: Check, namespace: str, name: str, role: str
    ) -> CheckResult:
        """Evaluate one check's query; it must give one number ({{namespace}}, {{name}},
        {{role}} are filled in)."""
        promql = (
            check.query.replace("{{namespace}}", namespace)
            .replace("{{name}}", name)
            .replace("{{role}}", role)
        )
        try:
            kind, result = await self.query(base, promql)
        except PrometheusError as exc:
            return CheckResult(check.name, None, str(exc))
        return CheckResult(check.name, *_single_value(kind, result))


def _single_value(kind: str, result: Any) -> tuple[float | None, str]:
    if kind == "scalar":
        value = _value(result[1])
    elif kind == "vector":
        if not result:
            return None, "no data"
        if len(result) > 1:
            return None, f"{len(result)} series; a check needs exactly one"
        value = _value(result[0]["value"][1])
    else:
        return None, f"unsupported result type {kind!r}"
    if math.isnan(value):
        return None, "NaN"
    return value, ""


@dataclass
class Poller:
    """Polls every known Prometheus once per interval; keeps the latest snapshot of each."""

    client: PrometheusClient
    interval: float
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    urls: dict[str, float] = field(default_factory=dict)  # url -> last time a handler asked
    on_poll: Callable[[str, Snapshot, float], None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def want(self, url: str) -> Snapshot | None:
        """A handler needs ``url``: keep polling it; return its latest snapshot, if any."""
        if url not in self.urls:
            self.wake.set()  # a new Prometheus: poll it now rather than an interval later
        self.urls[url] = time.monotonic()
        return self.snapshots.get(url)

    async def poll_once(self) -> None:
        stale = [u for u, t in self.urls.items() if time.monotonic() - t > 10 * self.interval]
        for url in stale:
            self.urls.pop(url, None)
            self.snapshots.pop(url, None)
        for url in list(self.urls):
            started = time.monotonic()
            snap = await self.client.snapshot(url, self.clock())
            self.snapshots[url] = snap
            if self.on_poll:
                self.on_poll(url, snap, time.monotonic() - started)
            if snap.error:
                log.warning("Prometheus poll failed: %s", snap.error)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.poll_once()
            except Exception:  # never let the poller die
                log.exception("Prometheus poll crashed")
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
            try:
                await asyncio.wait(
                    waiters, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for w in waiters:
                    w.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)

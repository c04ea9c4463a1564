"""Prometheus as the operator asks it: one batched poll per interval, plus PromQL checks.

The poller asks each Prometheus (the operator's default and any ``analysis.prometheusURL``)
four times per interval, however many ModelDeployments it watches, all of them at once (one
slow Prometheus delays only its own ModelDeployments):

- ``/api/v1/alerts``: every active alert; the firing ones with a ``modeldeployment`` label
  are indexed by (namespace, modeldeployment) then (role, version);
- ``/api/v1/rules?type=alert``: every loaded alerting rule and whether its last evaluation
  succeeded (a named alert that is not there, or fails, can never fire: no evidence);
- one query for which (role, version) Prometheus scrapes (so "nothing fires" can be told
  from "no data", and start-up from failure);
- one query for the server's prediction counters per (role, version): the evidence.

Between two full polls it reads ``/api/v1/alerts`` alone every ``alerts_interval`` (one
request per Prometheus per second, whatever N) and calls ``on_firing`` with the
ModelDeployments that have an alert newly firing, so that their rollback does not wait for
the interval. Handlers read the latest snapshot and turn it into an ``AnalysisSample`` for
the pure engine. A failed poll is kept as a snapshot with ``error`` set, which the engine
treats as inconclusive.

Only the optional per-ModelDeployment checks cost one query each.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

from modeldeploy.operator.evidence import AnalysisSample, CheckResult, RoleVersion
from modeldeploy.operator.model import Check
from modeldeploy.server import contract as c

log = logging.getLogger("modeldeploy.operator.analysis")

# Series the server exports from its first scrape on, with its version: "scraped once".
SCRAPED_QUERY = (
    f"count by (namespace, modeldeployment, role, version) "
    f'({c.METRIC_MODEL_INFO}{{modeldeployment!=""}})'
)
PREDICTIONS_QUERY = (
    f"sum by (namespace, modeldeployment, role, version) "
    f'({c.METRIC_PREDICTIONS}{{modeldeployment!=""}})'
)
ALERT_LABEL = "modeldeployment"
VERSION_LABEL = c.LABEL_VERSION
# Labels that tell one alert's firing series apart beyond role and version (the drift alert
# fires per feature): shown with the alert's name, so a rollback names the feature.
SUBJECT_LABELS = (c.LABEL_FEATURE,)

Key = tuple[str, str]  # (namespace, modeldeployment)
Firing = dict[Key, dict[RoleVersion, list[tuple[str, float]]]]
# When each firing alert became active (Prometheus' ``activeAt``: its condition first held),
# by (namespace, modeldeployment), then (role, version, alert as ``Firing`` names it).
ActiveSince = dict[Key, dict[tuple[str, str, str], datetime]]


class PrometheusError(Exception):
    """Prometheus could not answer (unreachable, HTTP error, bad query)."""


@dataclass
class Snapshot:
    """What one Prometheus said at ``at`` about every ModelDeployment."""

    at: datetime
    error: str = ""
    firing: Firing = field(default_factory=dict)
    scraped: dict[Key, set[RoleVersion]] = field(default_factory=dict)
    rules: dict[str, str] | None = None
    predictions: dict[Key, dict[RoleVersion, float]] = field(default_factory=dict)
    url: str = ""
    alerts_at: datetime | None = None  # when the fast poll last refreshed ``firing``
    active_since: ActiveSince = field(default_factory=dict)

    def sample(
        self, namespace: str, name: str, checks: tuple[CheckResult, ...] = ()
    ) -> AnalysisSample:
        key = (namespace, name)
        return AnalysisSample(
            at=self.at,
            error=self.error,
            firing={rv: tuple(alerts) for rv, alerts in self.firing.get(key, {}).items()},
            scraped=frozenset(self.scraped.get(key, set())),
            checks=checks,
            rules=self.rules,
            predictions=dict(self.predictions.get(key, {})),
            prometheus=self.url,
            alerts_at=self.alerts_at,
            active_since=dict(self.active_since.get(key, {})),
        )


def _value(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def _role_version(labels: dict[str, Any]) -> RoleVersion:
    return (str(labels.get("role", "")), str(labels.get(VERSION_LABEL, "")))


def _firing(
    alerts: Iterable[dict[str, Any]],
) -> Iterator[tuple[Key, RoleVersion, str, dict[str, Any]]]:
    """(key, (role, version), alert name with its subject labels, the alert) of each firing
    alert of a ModelDeployment."""
    for alert in alerts:
        labels = alert.get("labels") or {}
        if alert.get("state") != "firing" or not labels.get(ALERT_LABEL):
            continue
        key = (labels.get("namespace", ""), labels[ALERT_LABEL])
        subject = ",".join(f'{k}="{labels[k]}"' for k in SUBJECT_LABELS if labels.get(k))
        name = str(labels.get("alertname", "?")) + (f"{{{subject}}}" if subject else "")
        yield key, _role_version(labels), name, alert


def index_alerts(alerts: Iterable[dict[str, Any]]) -> Firing:
    """Firing alerts by (namespace, modeldeployment), then (role, version):
    [(alert, value)], the alert being its name with its subject labels, if any
    (``ModelFeatureDrift{feature="plan"}``; ``evidence.alert_name`` gives the name back)."""
    out: Firing = {}
    for key, rv, name, alert in _firing(alerts):
        out.setdefault(key, {}).setdefault(rv, []).append((name, _value(alert.get("value"))))
    for roles in out.values():
        for alerts_ in roles.values():
            alerts_.sort()
    return out


def index_active_since(alerts: Iterable[dict[str, Any]]) -> ActiveSince:
    """When each firing alert became active; an alert without a readable ``activeAt`` is
    left out (nothing is made up for it)."""
    out: ActiveSince = {}
    for key, (role, version), name, alert in _firing(alerts):
        try:
            since = datetime.fromisoformat(str(alert.get("activeAt", "")).replace("Z", "+00:00"))
        except ValueError:
            continue
        if since.tzinfo is not None:
            out.setdefault(key, {})[(role, version, name)] = since
    return out


def index_scraped(series: Iterable[dict[str, Any]]) -> dict[Key, set[RoleVersion]]:
    out: dict[Key, set[RoleVersion]] = {}
    for s in series:
        metric = s.get("metric") or {}
        if metric.get(ALERT_LABEL):
            key = (metric.get("namespace", ""), metric[ALERT_LABEL])
            out.setdefault(key, set()).add(_role_version(metric))
    return out


def index_predictions(series: Iterable[dict[str, Any]]) -> dict[Key, dict[RoleVersion, float]]:
    """The prediction counters summed over pods, by ModelDeployment, then (role, version)."""
    out: dict[Key, dict[RoleVersion, float]] = {}
    for s in series:
        metric = s.get("metric") or {}
        value = _value((s.get("value") or [None, None])[1])
        if metric.get(ALERT_LABEL) and not math.isnan(value):
            key = (metric.get("namespace", ""), metric[ALERT_LABEL])
            out.setdefault(key, {})[_role_version(metric)] = value
    return out


def index_rules(groups: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Every loaded alerting rule's name: "" when its last evaluation succeeded, else why.

    A name loaded in several groups (the chart's and a ModelDeployment's) is healthy only
    when every one of them is."""
    out: dict[str, str] = {}
    for group in groups:
        for rule in group.get("rules") or []:
            if rule.get("type", "alerting") != "alerting" or not rule.get("name"):
                continue
            name, health = str(rule["name"]), str(rule.get("health", ""))
            why = ""
            if health != "ok":
                why = f"rule in group {group.get('name', '?')} has health {health or 'unknown'}"
                if rule.get("lastError"):
                    why += f": {rule['lastError']}"
                elif health == "unknown":
                    why += " (not evaluated yet)"
            if why or name not in out:
                out[name] = out.get(name) or why
    return out


class PrometheusClient:
    """The two endpoints of Prometheus's HTTP API the operator uses."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout: float = 10.0,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._on_request = on_request  # counts requests by path (the operator's metric)

    async def _get(self, url: str, params: dict[str, str] | None = None) -> Any:
        if self._on_request is not None:
            self._on_request(url[url.find("/api/") :] if "/api/" in url else url)
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

    async def rules(self, base: str) -> list[dict[str, Any]]:
        data = await self._get(base.rstrip("/") + "/api/v1/rules", {"type": "alert"})
        return list((data or {}).get("groups") or [])

    async def query(self, base: str, promql: str) -> tuple[str, Any]:
        data = await self._get(base.rstrip("/") + "/api/v1/query", {"query": promql})
        return data.get("resultType", ""), data.get("result")

    async def snapshot(self, base: str, now: datetime) -> Snapshot:
        try:
            alerts, rules, (_, scraped), (_, predictions) = await asyncio.gather(
                self.alerts(base),
                self.rules(base),
                self.query(base, SCRAPED_QUERY),
                self.query(base, PREDICTIONS_QUERY),
            )
        except PrometheusError as exc:
            return Snapshot(at=now, error=f"{base}: {exc}", url=base)
        return Snapshot(
            at=now,
            firing=index_alerts(alerts),
            active_since=index_active_since(alerts),
            scraped=index_scraped(scraped or []),
            rules=index_rules(rules),
            predictions=index_predictions(predictions or []),
            url=base,
        )

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


def newly_firing(old: Firing, new: Firing) -> set[Key]:
    """ModelDeployments with an alert firing now that did not fire before."""
    out = set()
    for key, by_version in new.items():
        before = old.get(key, {})
        for rv, alerts in by_version.items():
            if {n for n, _ in alerts} - {n for n, _ in before.get(rv, [])}:
                out.add(key)
    return out


# Stop polling a Prometheus that no reconcile asked for in this long (at least ten polls):
# well over any resync period, so a live ModelDeployment's snapshot is never dropped.
FORGET_AFTER_SECONDS = 300.0


@dataclass
class Poller:
    """Polls every known Prometheus once per interval; keeps the latest snapshot of each.

    Between full polls, the firing alerts alone are read every ``alerts_interval``."""

    client: PrometheusClient
    interval: float
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    urls: dict[str, float] = field(default_factory=dict)  # url -> last time a handler asked
    on_poll: Callable[[str, Snapshot, float], None] | None = None
    on_firing: Callable[[str, set[Key]], None] | None = None
    alerts_interval: float = 1.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def want(self, url: str) -> Snapshot | None:
        """A handler needs ``url``: keep polling it; return its latest snapshot, if any."""
        if url not in self.urls:
            self.wake.set()  # a new Prometheus: poll it now rather than an interval later
        self.urls[url] = time.monotonic()
        return self.snapshots.get(url)

    def _store(self, url: str, snap: Snapshot) -> None:
        old = self.snapshots.get(url)
        self.snapshots[url] = snap
        fired = newly_firing(old.firing if old else {}, snap.firing)
        if fired and self.on_firing:
            self.on_firing(url, fired)

    async def poll_once(self) -> None:
        # a Prometheus no handler asked for in a while (its ModelDeployments are gone)
        forget = max(10 * self.interval, FORGET_AFTER_SECONDS)
        stale = [u for u, t in self.urls.items() if time.monotonic() - t > forget]
        for url in stale:
            self.urls.pop(url, None)
            self.snapshots.pop(url, None)
        # Concurrently: a slow or unreachable Prometheus (up to the client's timeout) must
        # not hold back the snapshots, and so the rollbacks, of the others.
        await asyncio.gather(*(self._poll(url) for url in list(self.urls)))

    async def _poll(self, url: str) -> None:
        started = time.monotonic()
        snap = await self.client.snapshot(url, self.clock())
        self._store(url, snap)
        if self.on_poll:
            self.on_poll(url, snap, time.monotonic() - started)
        if snap.error:
            log.warning("Prometheus poll failed: %s", snap.error)

    async def poll_alerts_once(self) -> None:
        """Refresh the firing alerts of every snapshot that has no error (concurrently)."""
        await asyncio.gather(*(self._poll_alerts(url) for url in list(self.urls)))

    async def _poll_alerts(self, url: str) -> None:
        snap = self.snapshots.get(url)
        if snap is None or snap.error:
            return
        try:
            alerts = await self.client.alerts(url)
        except PrometheusError as exc:
            log.info("alerts poll of %s failed: %s", url, exc)
            return
        self._store(
            url,
            replace(
                snap,
                firing=index_alerts(alerts),
                active_since=index_active_since(alerts),
                alerts_at=self.clock(),
            ),
        )

    async def _sleep(self, stop: asyncio.Event, seconds: float, wake: bool) -> None:
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self.wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.poll_once()
            except Exception:  # never let the poller die
                log.exception("Prometheus poll crashed")
            await self._sleep(stop, self.interval, wake=True)

    async def run_alerts(self, stop: asyncio.Event) -> None:
        """The fast path: firing alerts every ``alerts_interval`` seconds."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.poll_alerts_once()
            except Exception:  # never let the poller die
                log.exception("alerts poll crashed")
            spent = time.monotonic() - started
            await self._sleep(stop, max(0.05, self.alerts_interval - spent), wake=False)

"""Watches one ModelDeployment once a second: its status, the Prometheus values its rules
read, the alerts (with when each became active) and its Events. The demo draws its live view,
summary and plot from this record, the benchmark its timings."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from e2e import stack as st
from e2e.stack import Stack

# Prometheus values shown and plotted: (label, PromQL with {ns} and {name}).
SERIES = {
    "mean_stable": (
        'modeldeploy:prediction_mean:1m{{namespace="{ns}",modeldeployment="{name}",role="stable"}}'
    ),
    "mean_candidate": (
        'modeldeploy:prediction_mean:1m{{namespace="{ns}",'
        'modeldeployment="{name}",role="candidate"}}'
    ),
    "zscore": (
        'modeldeploy:prediction_divergence_zscore:1m{{namespace="{ns}",modeldeployment="{name}"}}'
    ),
    "psi_stable": (
        'modeldeploy:feature_psi_max:1m{{namespace="{ns}",modeldeployment="{name}",role="stable"}}'
    ),
    "psi_candidate": (
        'modeldeploy:feature_psi_max:1m{{namespace="{ns}",'
        'modeldeployment="{name}",role="candidate"}}'
    ),
}


def _ts(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (Kubernetes' or Prometheus')."""
    if not text:
        return None
    text = text.replace("Z", "+00:00")
    if "." in text:  # Prometheus: nanoseconds; fromisoformat takes at most microseconds
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text).timestamp()


@dataclass
class Alert:
    name: str
    role: str
    active_at: float  # when its expression was first seen true (Prometheus' activeAt)
    version: str = ""  # the rules keep the server's version label
    fired_at: float | None = None  # first time it was seen firing (active_at + for, by eval)
    value: float = math.nan


@dataclass
class Sample:
    t: float
    phase: str
    stable: str
    candidate: str
    weight: int
    step: int
    values: dict[str, float]


@dataclass
class Observer:
    stack: Stack
    name: str
    samples: list[Sample] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    _seen_events: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Observer:
        self._thread = threading.Thread(target=self._loop, name="observer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def mark(self, label: str) -> None:
        self.marks.append((time.time(), label))

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.poll()
            except Exception as exc:  # a slow apiserver or Prometheus must not end the record
                self.events.append(
                    {
                        "t": time.time(),
                        "type": "Observer",
                        "reason": "Error",
                        "message": str(exc)[:200],
                    }
                )
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def poll(self) -> None:
        now = time.time()
        s = st.status(self.stack, self.name)
        versions = {
            "stable": s.get("stableVersion", ""),
            "candidate": s.get("candidateVersion", ""),
        }
        values = {key: self._value(q, versions) for key, q in SERIES.items()}
        self.samples.append(
            Sample(
                now,
                s.get("phase", ""),
                s.get("stableVersion", ""),
                s.get("candidateVersion", ""),
                int(s.get("canaryWeight") or 0),
                int(s.get("currentStep") or 0),
                values,
            )
        )
        self._poll_alerts(now)
        for e in st.events(self.stack, self.name):
            key = f"{e['metadata']['uid']}/{e.get('count', 1)}"
            if key not in self._seen_events:
                self._seen_events.add(key)
                self.events.append(
                    {
                        "t": now,
                        "type": e.get("type", ""),
                        "reason": e.get("reason", ""),
                        "message": e.get("message", ""),
                    }
                )

    def _value(self, template: str, versions: dict[str, str]) -> float:
        """The series of the current stable or candidate version (a rolled-back
        candidate's series stays in its 1-minute window beside the next one's)."""
        q = template.format(ns=self.stack.namespace, name=self.name)
        res = self.stack.cluster.query(q)
        for r in res:
            metric = r.get("metric") or {}
            if metric.get("version") == versions.get(metric.get("role", ""), ""):
                return float(r["value"][1])
        return float(res[0]["value"][1]) if res else math.nan

    def _poll_alerts(self, now: float) -> None:
        for a in self.stack.cluster.prometheus_api("alerts")["alerts"]:
            labels = a.get("labels") or {}
            if (
                labels.get("namespace") != self.stack.namespace
                or labels.get("modeldeployment") != self.name
            ):
                continue
            active = _ts(a.get("activeAt")) or now
            role, version = labels.get("role", ""), labels.get("version", "")
            known = next(
                (
                    x
                    for x in self.alerts
                    if x.name == labels.get("alertname")
                    and x.role == role
                    and x.version == version
                    and abs(x.active_at - active) < 0.5
                ),
                None,
            )
            if known is None:
                known = Alert(labels.get("alertname", ""), role, active, version)
                self.alerts.append(known)
            if a.get("state") == "firing" and known.fired_at is None:
                known.fired_at = now  # the value when it fired: what the operator acted on
                known.value = float(a.get("value", "nan"))

    # ------------------------------------------------------------ reading the record

    def zero_weight_after(self, t: float, version: str) -> float | None:
        """First time after ``t`` at which ``version`` is no longer the candidate."""
        for s in self.samples:
            if s.t >= t and s.candidate != version:
                return s.t
        return None

    def first_alert(
        self, name: str, role: str, after: float, version: str | None = None
    ) -> Alert | None:
        found = [
            a
            for a in self.alerts
            if a.name == name
            and a.role == role
            and (a.fired_at or a.active_at) >= after
            and (version is None or a.version in (version, ""))
        ]
        return min(found, key=lambda a: a.active_at) if found else None

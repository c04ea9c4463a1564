"""What the operator's handlers share: its command-line configuration and its runtime state.

One ``Runtime`` per operator process; everything in it is memory only (per-object locks, what
was last applied and written, when each rollout's next sample is due), rebuilt from the
apiserver's watch after a restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modeldeploy.operator import converge
from modeldeploy.operator import defaults as d
from modeldeploy.operator.analysis import Poller
from modeldeploy.operator.kube import Kube
from modeldeploy.operator.metrics import OperatorMetrics
from modeldeploy.operator.registry import RegistryClient
from modeldeploy.operator.resolution import ResolutionCache


@dataclass
class Config:
    """Everything the command line decides."""

    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    prometheus_url: str = ""
    server_image: str = ""
    resync_seconds: float = 5.0
    analysis_interval: float = d.FULL_POLL_SECONDS
    alerts_interval: float = d.ALERTS_POLL_SECONDS
    metrics_port: int = 9102
    liveness_endpoint: str = "http://0.0.0.0:8081/healthz"
    peering: str | None = None
    priority: int = 0
    peering_lifetime: int = 20
    kubeconfig: str | None = None


@dataclass
class Runtime:
    """What the handlers share: the client, the poller, metrics, per-object locks."""

    config: Config
    kube: Kube
    metrics: OperatorMetrics
    poller: Poller | None = None
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    applied: dict[tuple[str, str], converge.Applied] = field(default_factory=dict)
    wakeups: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    # when each object's last reconcile ended (time.monotonic()): its resync counts from it
    reconciled: dict[tuple[str, str], float] = field(default_factory=dict)
    # woken because one of their alerts started firing: that reconcile's calls are urgent
    alerted: set[tuple[str, str]] = field(default_factory=set)
    # (namespace, name) -> (Prometheus URL, from when its next sample is due)
    due: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)
    written: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    warned: set[tuple[str, str, str]] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    metrics_started: bool = False
    registry: RegistryClient = field(default_factory=RegistryClient)  # models:/ look-ups
    resolutions: ResolutionCache = field(default_factory=ResolutionCache)
    write_backs: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)  # wake-ups

    def now(self) -> datetime:
        return datetime.now(UTC)

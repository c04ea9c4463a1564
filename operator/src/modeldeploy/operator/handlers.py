"""kopf registrations: thin async handlers around the pure engine.

One reconcile function serves create, update, resume and a timer (level-based: observe,
decide, converge). Slots are observed through kopf indexes of Deployments and Pods (memory,
not API calls); Prometheus through the shared batched poller. The order inside a reconcile
is what makes a restart safe: apply the desired children first, then write the status, so
a crash in between repeats the same (idempotent) decision.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from modeldeploy.operator import defaults as d
from modeldeploy.operator import engine
from modeldeploy.operator.analysis import Poller, PrometheusClient, Snapshot
from modeldeploy.operator.builders import Owner
from modeldeploy.operator.desired import children
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.kube import Kube, KubeError, merge_patch
from modeldeploy.operator.metrics import OperatorMetrics
from modeldeploy.operator.model import AnalysisSample, Observations, Spec, SpecError
from modeldeploy.operator.observe import deployment_summary, pod_summary, slot_observation
from modeldeploy.operator.promrules import PROMETHEUS_RULE_API
from modeldeploy.operator.routers import router_for

log = logging.getLogger("modeldeploy.operator")

REAPPLY_SECONDS = 300.0  # re-apply unchanged children now and then (repairs manual edits)


@dataclass
class Config:
    """Everything the command line decides."""

    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    prometheus_url: str = ""
    server_image: str = ""
    resync_seconds: float = 5.0
    analysis_interval: float = 10.0
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
    applied: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    written: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    warned: set[tuple[str, str, str]] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    metrics_started: bool = False

    def now(self) -> datetime:
        return datetime.now(UTC)


def _digest(objs: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(objs, sort_keys=True).encode()).hexdigest()


def observations(body: kopf.Body, deployments: Any, pods: Any) -> Observations:
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    slots = {}
    for slot in d.SLOTS:
        key = (ns, name, slot)
        dep = next(iter(deployments.get(key, [])), None) if deployments is not None else None
        slot_pods = list(pods.get(key, [])) if pods is not None else []
        slots[slot] = slot_observation(dep, slot_pods)
    control = (body["metadata"].get("annotations") or {}).get(d.ANNOTATION_CONTROL)
    return Observations(slots=slots, control=control)


async def analysis_sample(rt: Runtime, spec: Spec, status: RolloutStatus) -> AnalysisSample | None:
    """The latest batched snapshot for this ModelDeployment, plus its checks when due.

    Also between rollouts: the engine watches the stable's drift alert in every sample."""
    url = spec.analysis.prometheus_url or rt.config.prometheus_url
    if not url:
        return AnalysisSample(
            at=rt.now(), error="no Prometheus: set spec.analysis.prometheusURL or --prometheus-url"
        )
    assert rt.poller is not None
    snap: Snapshot | None = rt.poller.want(url)
    if snap is None:
        return None
    checks: tuple[Any, ...] = ()
    if spec.analysis.checks and not snap.error and engine.sample_due(spec, status, snap.at):
        role = engine.analysis_role(spec, status) or d.ROLE_CANDIDATE
        client = rt.poller.client
        checks = tuple(
            await asyncio.gather(
                *(
                    client.check(url, c, spec.namespace, spec.name, role)
                    for c in spec.analysis.checks
                )
            )
        )
    return snap.sample(spec.namespace, spec.name, checks)


async def current_status(rt: Runtime, body: kopf.Body) -> dict[str, Any]:
    """The status to decide on, as JSON (the base of the merge patch): the watch's, unless
    our own last write has not arrived yet."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    status = dict(body.get("status") or {})
    written = rt.written.get(key)
    if written is None or written[1] == status:
        return status
    if body["metadata"].get("resourceVersion") == written[0]:
        return status
    fresh = await rt.kube.get(d.KIND, *key)
    return dict((fresh or {}).get("status") or {})


async def apply_children(rt: Runtime, body: kopf.Body, spec: Spec, actions: Any) -> None:
    key = (spec.namespace, spec.name)
    owner = Owner.from_body(body)
    with_rule = await rt.kube.has_api(*PROMETHEUS_RULE_API)
    router = router_for(spec)
    api = router.required_api
    with_traffic = api is None or await rt.kube.has_api(api.group, api.version, api.plural)
    objs = children(owner, spec, actions, with_rule=with_rule, with_traffic=with_traffic)
    if api is not None and not with_traffic:  # the router's objects are left out
        warn = (spec.namespace, spec.name, router.name)
        if warn not in rt.warned:
            rt.warned.add(warn)
            kopf.warn(body, reason="ProviderMissing", message=api.missing_message(router.name))
    digest = _digest(objs)
    last = rt.applied.get(key)
    if last and last[0] == digest and time.monotonic() - last[1] < REAPPLY_SECONDS:
        return
    for obj in objs:
        await rt.kube.apply(obj)
    rt.applied[key] = (digest, time.monotonic())


async def label_pods(rt: Runtime, spec: Spec, roles: dict[str, str], pods: Any) -> None:
    """Set ``modeldeploy.io/role`` on running pods (templates never carry it: no restarts)."""
    from modeldeploy.operator.builders import pod_role_patch

    for slot, role in roles.items():
        for pod in list(pods.get((spec.namespace, spec.name, slot), [])) if pods else []:
            if pod["role"] != role and not pod["deleting"]:
                try:
                    await rt.kube.patch("Pod", spec.namespace, pod["name"], pod_role_patch(role))
                except KubeError as exc:
                    if exc.status != 404:
                        raise


def record_outcomes(rt: Runtime, old: RolloutStatus, new: RolloutStatus) -> None:
    """Count a rollout when it ends (a new history entry) and observe how long it took."""
    top = new.history[0] if new.history else None
    if top is None or (old.history and old.history[0] == top):
        return
    rt.metrics.rollouts.labels(outcome=top.outcome).inc()
    if top.started_at and top.finished_at:
        seconds = (top.finished_at - top.started_at).total_seconds()
        if top.outcome in ("RolledBack", "Aborted"):
            rt.metrics.time_to_rollback.observe(seconds)
        elif top.outcome == "Promoted":
            rt.metrics.rollout_duration.observe(seconds)


async def reconcile(
    rt: Runtime, body: kopf.Body, deployments: Any, pods: Any, trigger: str
) -> None:
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    lock = rt.locks.setdefault((ns, name), asyncio.Lock())
    async with lock:
        rt.metrics.reconciles.labels(trigger=trigger).inc()
        raw = await current_status(rt, body)
        try:
            spec = Spec.from_body(dict(body), default_image=rt.config.server_image)
        except SpecError as exc:
            rt.metrics.errors.labels(kind="spec").inc()
            if raw.get("message") != f"invalid spec: {exc}":
                kopf.warn(body, reason="InvalidSpec", message=str(exc))
                await rt.kube.patch_status(
                    d.KIND, ns, name, {"message": f"invalid spec: {exc}", "phase": "Degraded"}
                )
            return
        status = RolloutStatus.from_json(raw)  # parsed once, written once (below)
        obs = observations(body, deployments, pods)
        sample = await analysis_sample(rt, spec, status)
        obs = Observations(slots=obs.slots, control=obs.control, analysis=sample)
        new_status, actions = engine.reconcile(spec, status, obs, rt.now())
        before, after = (
            s.analysis.last_sample_at if s.analysis else None for s in (status, new_status)
        )
        at = sample.at if sample else None
        rt.metrics.observe_tick(before, after, at, spec.analysis.interval, rt.now())
        try:
            await apply_children(rt, body, spec, actions)
            await label_pods(rt, spec, actions.pod_roles, pods)
            new_raw = new_status.to_json()
            patch = merge_patch(raw, new_raw)
            if patch:
                res = await rt.kube.patch_status(d.KIND, ns, name, patch)
                rt.written[(ns, name)] = (
                    res.get("metadata", {}).get("resourceVersion", ""),
                    new_raw,
                )
        except KubeError as exc:
            rt.metrics.errors.labels(kind="api").inc()
            raise kopf.TemporaryError(f"{exc}", delay=5) from None
        for event in actions.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        record_outcomes(rt, status, new_status)


def build_registry(rt: Runtime) -> kopf.OperatorRegistry:
    """Register every handler on a fresh registry (so the timer interval is configurable)."""
    registry = kopf.OperatorRegistry()
    res = (d.GROUP, d.VERSION, d.PLURAL)

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> Any:
        """The official client's loading: in-cluster, else $KUBECONFIG or ~/.kube/config."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(id="configure", registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = d.FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=d.GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=d.GROUP, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING
        settings.watching.inactivity_timeout = 600
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        # a dead peer is ignored after this long: the fail-over time of two replicas
        settings.peering.lifetime = rt.config.peering_lifetime
        await start_background(rt)

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(**_: Any) -> None:
        rt.stop.set()
        for task in rt.tasks:
            task.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)

    @kopf.on.probe(id="prometheus", registry=registry)
    def probe_prometheus(**_: Any) -> dict[str, str]:
        if rt.poller is None:
            return {}
        return {url: snap.error or "ok" for url, snap in rt.poller.snapshots.items()}

    @kopf.index(
        "apps",
        "v1",
        "deployments",
        labels={d.LABEL_NAME: kopf.PRESENT, d.LABEL_SLOT: kopf.PRESENT},
        id="md_deployments",
        registry=registry,
    )
    def md_deployments(
        body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        key = (namespace or "", labels[d.LABEL_NAME], labels[d.LABEL_SLOT])
        return {key: deployment_summary(dict(body))}

    @kopf.index(
        "",
        "v1",
        "pods",
        labels={d.LABEL_NAME: kopf.PRESENT, d.LABEL_SLOT: kopf.PRESENT},
        id="md_pods",
        registry=registry,
    )
    def md_pods(
        body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        key = (namespace or "", labels[d.LABEL_NAME], labels[d.LABEL_SLOT])
        return {key: pod_summary(dict(body))}

    @kopf.on.create(*res, id="reconcile", registry=registry)
    @kopf.on.update(*res, id="reconcile", registry=registry)
    @kopf.on.resume(*res, id="reconcile", registry=registry)
    async def on_change(body: kopf.Body, reason: str, **kwargs: Any) -> None:
        # kopf passes each index as a keyword argument named after its id.
        await reconcile(rt, body, kwargs["md_deployments"], kwargs["md_pods"], trigger=reason)

    @kopf.timer(
        *res, interval=rt.config.resync_seconds, initial_delay=1.0, id="resync", registry=registry
    )
    async def resync(body: kopf.Body, **kwargs: Any) -> None:
        await reconcile(rt, body, kwargs["md_deployments"], kwargs["md_pods"], trigger="timer")

    @kopf.on.delete(*res, optional=True, id="forget", registry=registry)
    async def on_delete(body: kopf.Body, **_: Any) -> None:
        """Children go with their owner (garbage collection); forget what we remember."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        rt.locks.pop(key, None)
        rt.applied.pop(key, None)
        rt.written.pop(key, None)

    return registry


async def start_background(rt: Runtime) -> None:
    """The Prometheus poller and the metrics endpoint (started once per operator)."""
    import aiohttp
    from prometheus_client import start_http_server

    if rt.poller is None:
        session = aiohttp.ClientSession()

        def on_poll(url: str, snap: Snapshot, seconds: float) -> None:
            rt.metrics.analysis_polls.labels(outcome="error" if snap.error else "ok").inc()
            rt.metrics.analysis_poll_seconds.observe(seconds)

        rt.poller = Poller(
            client=PrometheusClient(session), interval=rt.config.analysis_interval, on_poll=on_poll
        )

        async def run_poller() -> None:
            try:
                await rt.poller.run(rt.stop)  # type: ignore[union-attr]
            finally:
                await session.close()

        rt.tasks.append(asyncio.create_task(run_poller()))
    if rt.config.metrics_port and not rt.metrics_started:
        try:
            start_http_server(rt.config.metrics_port, registry=rt.metrics.registry)
            rt.metrics_started = True
        except OSError as exc:  # the operator still works without its metrics endpoint
            log.error("metrics endpoint on port %d not started: %s", rt.config.metrics_port, exc)

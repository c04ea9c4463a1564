"""kopf registrations: thin async handlers around the pure engine.

One reconcile function serves create, update, resume and the per-object ``react`` daemon
(wake-ups and the resync: ``resync``), level-based: observe, decide, converge. Slots are
observed through kopf indexes of Deployments and Pods (memory, not API calls); Prometheus
through the shared batched poller. The order inside a reconcile
is what makes a restart safe: apply the desired children first, then write the status, so
a crash in between repeats the same (idempotent) decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from modeldeploy.operator import (
    converge,
    engine,
    kopfsettings,
    resync,
    retrainjobs,
    retrainoutput,
    retrainsync,
    writeback,
    writeback_task,
)
from modeldeploy.operator import defaults as d
from modeldeploy.operator.analysis import Poller, PrometheusClient, Snapshot
from modeldeploy.operator.autoscaling import scale_status
from modeldeploy.operator.converge import apply_children, label_pods
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.kube import KubeError, merge_patch
from modeldeploy.operator.lanes import calls_for, urgent
from modeldeploy.operator.metrics import record_outcomes, record_retrain
from modeldeploy.operator.model import Observations, Spec, SpecError
from modeldeploy.operator.observe import deployment_summary, pod_summary, slot_observation
from modeldeploy.operator.resolution import Decision
from modeldeploy.operator.resolving import resolve_spec, with_resolution
from modeldeploy.operator.runtime import Runtime
from modeldeploy.operator.sampling import analysis_sample, remember_due, wake_alerted, wake_due

log = logging.getLogger("modeldeploy.operator")

STATUS_CONFLICT_RETRIES = 4  # re-read and decide again on a 409 of the status write


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


def current_status(rt: Runtime, body: kopf.Body) -> tuple[dict[str, Any], str]:
    """The status to decide on, as JSON (the base of the merge patch), and the
    resourceVersion it belongs to: the watch's, unless our own last write has not arrived.

    Then it is what we wrote, at the resourceVersion the apiserver gave that write: no read
    is needed, since the status write is conditional on that resourceVersion and a 409 (the
    object changed since, say by another writer) re-reads and decides again."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    status = dict(body.get("status") or {})
    rv = str(body["metadata"].get("resourceVersion") or "")
    written = rt.written.get(key)
    if written is None or written[1] == status or rv == written[0]:
        return status, rv
    return dict(written[1]), written[0]


async def fresh_status(rt: Runtime, namespace: str, name: str) -> tuple[dict[str, Any], str]:
    fresh = await rt.kube.get(d.KIND, namespace, name) or {}
    rv = str((fresh.get("metadata") or {}).get("resourceVersion") or "")
    return dict(fresh.get("status") or {}), rv


async def reconcile(
    rt: Runtime,
    body: kopf.Body,
    deployments: Any,
    pods: Any,
    trigger: str,
    child_indexes: tuple[Any, ...] | None = None,
    retrain_indexes: tuple[Any, Any] = (None, None),
) -> None:
    """One reconcile of one object, under its lock; its client calls are made on its behalf
    (``lanes.calls_for``), so they are hurried while a reconcile an alert woke waits here."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    with calls_for(key):
        async with rt.locks.setdefault(key, asyncio.Lock()):
            try:
                await _reconcile_locked(
                    rt, body, deployments, pods, trigger, child_indexes, retrain_indexes
                )
            finally:
                resync.done(rt, key)


async def _reconcile_locked(
    rt: Runtime,
    body: kopf.Body,
    deployments: Any,
    pods: Any,
    trigger: str,
    child_indexes: tuple[Any, ...] | None,
    retrain_indexes: tuple[Any, Any],
) -> None:
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    rt.metrics.reconciles.labels(trigger=trigger).inc()
    alerted = (ns, name) in rt.alerted
    rt.alerted.discard((ns, name))
    raw, rv = current_status(rt, body)
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
    args = (rt.registry, rt.resolutions, rt.kube, body, raw, spec, rt.now())
    if (decision := await resolve_spec(*args)) is None or decision.spec is None:
        return  # a models:/ URI that cannot be resolved: nothing new is applied
    requested = decision.spec  # concrete: models:/NAME/VERSION and its pin
    spec = retrainoutput.apply(requested, raw, ns, name)  # a retrained bundle it adopted
    obs = observations(body, deployments, pods)
    seen = None if child_indexes is None else converge.observed(child_indexes, (ns, name))
    for attempt in range(STATUS_CONFLICT_RETRIES):
        status = RolloutStatus.from_json(raw)  # parsed once, written once (below)
        sample = await analysis_sample(rt, spec, status)
        awaiting = retrainsync.awaiting(raw)
        obs = Observations(
            slots=obs.slots, control=obs.control, analysis=sample, retrain_awaiting=awaiting
        )
        new_status, actions = engine.reconcile(spec, status, obs, rt.now())
        before, after = (
            s.analysis.last_sample_at if s.analysis else None for s in (status, new_status)
        )
        at = sample.at if sample else None
        rt.metrics.observe_tick(before, after, at, spec.analysis.interval, rt.now())
        # a rollback's writes (and those of a reconcile an alert woke) go first
        with urgent(alerted or new_status.rolled_back_since(status)):
            try:
                await apply_children(rt, body, spec, actions, seen)
                await label_pods(rt, spec, actions.pod_roles, pods)
                retrain, retrain_events = await retrainsync.step(
                    rt,
                    body,
                    requested,
                    raw,
                    (status, new_status),
                    sample,
                    retrain_indexes,
                    obs.control,
                )
                stable = new_status.stable_slot
                ready = obs.slot(stable).ready_replicas if stable else 0
                new_raw = status_to_write(raw, new_status, decision, retrain, body, ready)
                patch = merge_patch(raw, new_raw)
                if patch:
                    res = await rt.kube.patch_status(d.KIND, ns, name, patch, rv or None)
                    rt.written[(ns, name)] = (
                        res.get("metadata", {}).get("resourceVersion", ""),
                        new_raw,
                    )
                break
            except KubeError as exc:
                if exc.status == 409 and attempt < STATUS_CONFLICT_RETRIES - 1:
                    # Another writer changed the object since we read it: decide again on
                    # what it wrote, never over it.
                    rt.metrics.errors.labels(kind="conflict").inc()
                    raw, rv = await fresh_status(rt, ns, name)
                    continue
                rt.metrics.errors.labels(kind="api").inc()
                raise kopf.TemporaryError(f"{exc}", delay=5) from None
    for event in (*actions.events, *retrain_events):
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        log.info("%s/%s %s: %s", ns, name, event.reason, event.message)
    writeback_task.wake(rt, (ns, name), rt.written.get((ns, name), ("", {}))[1])
    record_outcomes(rt.metrics, status, new_status)
    record_retrain(rt.metrics, retrain_events)
    remember_due(rt, (ns, name), spec, new_status)


def status_to_write(
    raw: dict[str, Any],
    new_status: RolloutStatus,
    decision: Decision,
    retrain: dict[str, Any] | None,
    body: kopf.Body,
    stable_ready: int,
) -> dict[str, Any]:
    """The whole status a reconcile writes (its patch is the difference from ``raw``): the
    engine's rollout state, the model resolution, the retraining state, the write-back
    fields carried over from ``raw`` and the scale subresource's read side."""
    new_raw = with_resolution(new_status.to_json(), decision)
    if retrain is not None:
        new_raw[retrainsync.STATUS_KEY] = retrain
    new_raw = writeback.carry(raw, new_raw, writeback.Settings.from_spec(body["spec"]))
    new_raw.update(scale_status(body["metadata"]["name"], new_status.stable_slot, stable_ready))
    return new_raw


def slot_key(namespace: str | None, labels: Mapping[str, str]) -> tuple[str, str, str]:
    """How the slot indexes (Deployments and Pods alike) key an object: its slot."""
    return (namespace or "", labels[d.LABEL_NAME], labels[d.LABEL_SLOT])


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
        kopfsettings.configure(settings, rt.config.peering_lifetime)
        await start_background(rt)

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(**_: Any) -> None:
        rt.stop.set()
        for task in rt.tasks:
            task.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        await rt.registry.close()

    @kopf.on.probe(id="prometheus", registry=registry)
    def probe_prometheus(**_: Any) -> dict[str, str]:
        if rt.poller is None:
            return {}
        return {url: snap.error or "ok" for url, snap in rt.poller.snapshots.items()}

    # The index functions are async although they wait for nothing: kopf runs a sync
    # handler in a thread of its executor, a hop per watch event (thousands a minute at 500
    # ModelDeployments), while an async one runs in the event loop at once.
    @kopf.index(
        "apps",
        "v1",
        "deployments",
        labels={d.LABEL_NAME: kopf.PRESENT, d.LABEL_SLOT: kopf.PRESENT},
        id="md_deployments",
        registry=registry,
    )
    async def md_deployments(
        body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        return {slot_key(namespace, labels): deployment_summary(dict(body))}

    @kopf.index(
        "",
        "v1",
        "pods",
        labels={d.LABEL_NAME: kopf.PRESENT, d.LABEL_SLOT: kopf.PRESENT},
        id="md_pods",
        registry=registry,
    )
    async def md_pods(
        body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        return {slot_key(namespace, labels): pod_summary(dict(body))}

    retrain_labels = {d.LABEL_NAME: kopf.PRESENT, d.LABEL_RETRAIN_RUN: kopf.PRESENT}

    @kopf.index("batch", "v1", "jobs", labels=retrain_labels, id="md_jobs", registry=registry)
    async def md_jobs(
        body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
    ) -> dict[tuple[str, str], dict[str, Any]]:
        return {(namespace or "", labels[d.LABEL_NAME]): retrainjobs.job_summary(body)}

    @kopf.index("", "v1", "pods", labels=retrain_labels, id="md_job_pods", registry=registry)
    async def md_job_pods(
        body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
    ) -> dict[tuple[str, str], dict[str, Any]]:
        return {(namespace or "", labels[d.LABEL_NAME]): retrainjobs.pod_summary(body)}

    def child_index(group: str, version: str, plural: str, kind: str) -> None:
        @kopf.index(
            group,
            version,
            plural,
            labels={d.LABEL_NAME: kopf.PRESENT},
            id=f"md_children_{plural}",
            registry=registry,
        )
        async def index(body: kopf.Body, **_: Any) -> dict[tuple[str, str], converge.Markers]:
            return converge.index_entry(kind, body)

    for child_kind in converge.CHILD_KINDS:
        child_index(*child_kind)

    def children_of(kwargs: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            kwargs.get(f"md_children_{plural}") for _, _, plural, _ in converge.CHILD_KINDS
        )

    def retrain_of(kwargs: dict[str, Any]) -> tuple[Any, Any]:
        return kwargs.get("md_jobs"), kwargs.get("md_job_pods")

    @kopf.on.create(*res, id="reconcile", registry=registry)
    @kopf.on.update(*res, id="reconcile", registry=registry)
    @kopf.on.resume(*res, id="reconcile", registry=registry)
    async def on_change(body: kopf.Body, reason: str, **kwargs: Any) -> None:
        # kopf passes each index as a keyword argument named after its id.
        await reconcile(
            rt,
            body,
            kwargs["md_deployments"],
            kwargs["md_pods"],
            trigger=reason,
            child_indexes=children_of(kwargs),
            retrain_indexes=retrain_of(kwargs),
        )

    @kopf.daemon(*res, id="react", cancellation_timeout=2.0, registry=registry)
    async def react(body: kopf.Body, stopped: Any, **kwargs: Any) -> None:
        """Reconcile when woken (an alert started firing for this ModelDeployment, or a
        poll brought its next analysis sample) and a resync period after its last
        reconcile (``resync``)."""

        async def again(trigger: str) -> None:
            await reconcile(
                rt,
                body,
                kwargs["md_deployments"],
                kwargs["md_pods"],
                trigger=trigger,
                child_indexes=children_of(kwargs),
                retrain_indexes=retrain_of(kwargs),
            )

        await resync.run(
            rt, (body["metadata"]["namespace"], body["metadata"]["name"]), stopped, again
        )

    @kopf.daemon(
        *res,
        id="writeback",
        cancellation_timeout=2.0,
        when=lambda spec, **_: writeback.Settings.from_spec(dict(spec)).enabled,
        registry=registry,
    )
    async def write_back(body: kopf.Body, stopped: Any, **_: Any) -> None:
        """Rollout outcomes back to the MLflow registry (opt-in: writeback_task)."""
        await writeback_task.run(rt, body, stopped)

    @kopf.on.delete(*res, optional=True, id="forget", registry=registry)
    async def on_delete(body: kopf.Body, **_: Any) -> None:
        """Children go with their owner (garbage collection); forget what we remember."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        rt.locks.pop(key, None)
        rt.applied.pop(key, None)
        rt.written.pop(key, None)
        rt.wakeups.pop(key, None)
        rt.reconciled.pop(key, None)
        rt.due.pop(key, None)
        rt.alerted.discard(key)

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
            wake_due(rt, url, snap)

        rt.poller = poller = Poller(
            client=PrometheusClient(
                session,
                on_request=lambda path: rt.metrics.prometheus_requests.labels(path=path).inc(),
            ),
            interval=rt.config.analysis_interval,
            on_poll=on_poll,
            on_firing=lambda url, keys: wake_alerted(rt, keys),
            alerts_interval=rt.config.alerts_interval,
        )

        async def run_poller() -> None:
            try:
                await asyncio.gather(poller.run(rt.stop), poller.run_alerts(rt.stop))
            finally:
                await session.close()

        rt.tasks.append(asyncio.create_task(run_poller()))
    if rt.config.metrics_port and not rt.metrics_started:
        try:
            start_http_server(rt.config.metrics_port, registry=rt.metrics.registry)
            rt.metrics_started = True
        except OSError as exc:  # the operator still works without its metrics endpoint
            log.error("metrics endpoint on port %d not started: %s", rt.config.metrics_port, exc)

"""The retraining loop's I/O (kopf side of ``retraining``), one step per reconcile.

Called by the reconcile after the engine decided, with the same Prometheus sample: the
stable's trigger alerts come from it (as ``watch_stable_drift`` reads them), the Jobs and
their pods from kopf indexes (memory, no LIST per object). The step's wanted Jobs are
created with server-side apply when the index does not have them yet (a crash between the
apply and the status write only applies the same Job again), the Jobs of old runs are
deleted, a version the gate decided on is tagged with its table (``gatetags``), and a
version that passed gets the spec's alias, moved with the operator's own registry
credentials (``registry.RegistryClient``, as the write-back does). The new
``status.retrain`` goes into the status the reconcile writes; the Events are posted after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator import gatetags, retraining, retrainjobs, retrainoutput
from modeldeploy.operator.engine import RolloutStatus, parse_control
from modeldeploy.operator.engine.judging import firing_watched
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import Event, Json, Spec
from modeldeploy.operator.owned import Owner
from modeldeploy.operator.resolution import SourceError
from modeldeploy.operator.runtime import Runtime
from modeldeploy.server.contract import registry as reg
from modeldeploy.server.contract import sources

STATUS_KEY = "retrain"


def awaiting(raw: Json) -> bool:
    """A retrained version waits for the promote control (the engine then leaves it alone)."""
    state = raw.get(STATUS_KEY)
    return isinstance(state, dict) and state.get("phase") == "AwaitingApproval"


def new_control(control: str | None, before: RolloutStatus) -> str | None:
    """The verb of a control annotation value not applied before (the engine's own rule)."""
    if not control or control == before.last_control:
        return None
    return parse_control(control)


def stable_firing(spec: Spec, sample: AnalysisSample | None, after: RolloutStatus) -> Any:
    """The trigger alerts firing for the stable's version in the reconcile's sample (the one
    ``watch_stable_drift`` reads): an older stable's, or a candidate's, never count."""
    if spec.retrain is None or sample is None or sample.error or not after.stable_version:
        return ()
    return tuple(firing_watched(sample, spec.retrain.alerts, d.ROLE_STABLE, after.stable_version))


def stable_firing_since(
    spec: Spec, sample: AnalysisSample | None, after: RolloutStatus
) -> datetime | None:
    """When the earliest trigger alert firing for the stable's version became active."""
    if spec.retrain is None or sample is None or sample.error or not after.stable_version:
        return None
    return sample.active_since_of(d.ROLE_STABLE, after.stable_version, set(spec.retrain.alerts))


def unloaded_alerts(spec: Spec, sample: AnalysisSample | None) -> tuple[str, ...] | None:
    """The trigger alerts the sample's Prometheus has no loaded rule for (None: unknown)."""
    if spec.retrain is None or sample is None or sample.error or sample.rules is None:
        return None
    return tuple(a for a in spec.retrain.alerts if a not in sample.rules)


async def step(
    rt: Runtime,
    body: Any,
    spec: Spec,
    raw: Json,
    statuses: tuple[RolloutStatus, RolloutStatus],
    sample: AnalysisSample | None,
    indexes: tuple[Any, Any],
    control: str | None,
) -> tuple[Json | None, tuple[Event, ...]]:
    """The new ``status.retrain`` (None without ``spec.retrain``: the old one is kept as it
    was) and the Events to post; ``spec`` is the requested one (resolved, with no adopted
    version in it: ``retrainoutput``), ``statuses`` the rollout's before and after the
    engine, ``indexes`` the Jobs' and their pods' kopf indexes."""
    rs = spec.retrain
    if rs is None:
        return None, ()
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    key = (ns, name)
    jobs_index, pods_index = indexes
    jobs = retrainjobs.job_states(
        list(jobs_index.get(key, [])) if jobs_index is not None else [],
        list(pods_index.get(key, [])) if pods_index is not None else [],
    )
    before, after = statuses
    target = retrainoutput.target(spec, ns, name)
    inputs = retraining.Inputs(
        firing=stable_firing(spec, sample, after),
        rollout_active=after.active,
        stable=retrainjobs.stable_of(after, registry=target is None),
        jobs=jobs,
        control=new_control(control, before),
        unloaded=unloaded_alerts(spec, sample),
        firing_since=stable_firing_since(spec, sample, after),
        target=target,
    )
    state = raw.get(STATUS_KEY) if isinstance(raw.get(STATUS_KEY), dict) else {}
    decision = retraining.step(rs, state or {}, inputs, rt.now(), retraining.job_prefix(name))
    run = decision.state.get("current") or {}
    owner = Owner.from_body(body)
    for kind in decision.jobs:
        job = (retrainjobs.train_job if kind == "train" else retrainjobs.gate_job)(owner, spec, run)
        if job["metadata"]["name"] not in jobs:
            await rt.kube.apply(job)
    for old in decision.delete:
        await rt.kube.delete("Job", ns, old)
    state, tagged = await _write_gate_tags(rt, spec, f"{ns}/{name}", decision.state)
    events = decision.events + tagged
    if decision.move_alias is None:
        return state, events
    moved = await _move_alias(rt, body, spec, state, decision.move_alias.version)
    return moved.state, events + moved.events


def _tracking_uri(spec: Spec) -> str:
    mlflow = spec.template.model.mlflow
    return mlflow.tracking_uri if mlflow else ""


async def _write_gate_tags(
    rt: Runtime, spec: Spec, deployment: str, state: Json
) -> tuple[Json, tuple[Event, ...]]:
    """Tag each decided version with its gate table (``gatetags``), before the alias moves:
    a failure is recorded and tried again later, and never holds the promotion."""
    events: list[Event] = []
    for run in gatetags.pending(state, rt.now()):
        calls = gatetags.requests(run, deployment, rt.now())
        try:
            await rt.registry.write(_tracking_uri(spec), calls)
        except SourceError as exc:
            state, news = gatetags.written(state, str(run.get("id")), rt.now(), str(exc))
        else:
            state, news = gatetags.written(state, str(run.get("id")), rt.now())
        events += news
    return state, tuple(events)


async def _move_alias(
    rt: Runtime, body: Any, spec: Spec, state: Json, version: str
) -> retraining.Decision:
    assert spec.retrain is not None
    requested = str(body["spec"]["model"]["bundleURI"])  # models:/NAME@ALIAS (the CEL rule)
    tracking = _tracking_uri(spec)
    alias, request = alias_request(requested, version)
    try:
        await rt.registry.write(tracking, [request])
    except SourceError as exc:
        return retraining.alias_moved(spec.retrain, state, rt.now(), alias, str(exc))
    # The next reconcile resolves the alias afresh, not from a cached answer: the new
    # version rolls out at once.
    rt.resolutions.entries.pop((tracking, requested), None)
    return retraining.alias_moved(spec.retrain, state, rt.now(), alias)


def alias_request(bundle_uri: str, version: str) -> tuple[str, reg.Request]:
    """The alias of the spec's ``models:/NAME@ALIAS`` and the registry call that moves it to
    ``version`` (the write-back's request builder; sent with the operator's credentials)."""
    name, _, alias = sources.split_models_uri(bundle_uri)
    return alias, reg.set_alias_request(name, alias, version)

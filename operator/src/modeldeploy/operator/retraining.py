"""The retraining loop as a pure state machine over ``status.retrain``.

``step(spec, state, inputs, now) -> Decision``: no I/O, no clock, no kopf. The reconcile
feeds it the stable's firing alerts (the same batched sample ``watch_stable_drift`` reads),
whether a rollout is active, the retraining Jobs it observed and a new control verb; it
applies the decision (create the Jobs, delete old ones, move the alias, post the Events)
and writes the state. Everything that decides lives in the state, so a restarted operator
resumes the same run.

Phases: Idle -> Training (the trainer Job) -> Gating (the gate Job) -> Promoting (the alias
is moved to the new version, or without a registry the version is adopted in status: either
way the reconcile then rolls it out with the ModelDeployment's own strategy and analysis)
-> Idle; with ``approval: manual`` Gating ->
AwaitingApproval until the promote control. A failed or timed-out Job ends the run (phase
Failed), a gate that says no ends it as Rejected (the alias never moves); the next run
obeys the same cooldown and daily limit. A due run that is held posts one ``RetrainHeld``
Event per change of the reason, never one per tick.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from modeldeploy.operator import defaults as d
from modeldeploy.operator import gatetags, retrainoutput
from modeldeploy.operator.model import Event, format_time, parse_time
from modeldeploy.operator.retrainspec import RetrainSpec
from modeldeploy.server.contract import retrain as c
from modeldeploy.server.contract import sources

Json = dict[str, Any]
JobKind = Literal["train", "gate"]
DAY = timedelta(hours=24)
ACTIVE_PHASES = ("Training", "Gating", "AwaitingApproval", "Promoting")


@dataclass(frozen=True)
class JobState:
    """A retraining Job as observed: its state and its pod's termination message."""

    name: str
    state: Literal["running", "succeeded", "failed"]
    reason: str = ""  # the Job's Failed condition reason (DeadlineExceeded, ...)
    message: str = ""  # the main container's termination message (JSON per the contract)
    exit_code: int | None = None


@dataclass(frozen=True)
class Stable:
    """The stable model a run starts from: concrete, as its slot runs it."""

    uri: str  # models:/NAME/VERSION
    version: str  # the registry version
    sha256: str


@dataclass(frozen=True)
class Inputs:
    firing: tuple[tuple[str, float], ...] = ()  # trigger alerts firing for the stable version
    rollout_active: bool = False
    stable: Stable | None = None
    jobs: dict[str, JobState] = field(default_factory=dict)
    control: str | None = None  # the verb of a new control annotation value
    unloaded: tuple[str, ...] | None = None  # trigger alerts Prometheus has no rule for
    firing_since: datetime | None = None  # when the earliest firing one became active
    target: retrainoutput.Target | None = None  # spec.retrain.output's (None: a registry)


@dataclass(frozen=True)
class AliasMove:
    version: str


@dataclass(frozen=True)
class Decision:
    state: Json  # the new ``status.retrain``
    events: tuple[Event, ...] = ()
    jobs: tuple[JobKind, ...] = ()  # the current run's Jobs that must exist
    delete: tuple[str, ...] = ()  # Jobs of old runs to delete
    move_alias: AliasMove | None = None


class _Step:
    """One decision's working state (a copy of the input state)."""

    def __init__(self, spec: RetrainSpec, state: Json, inputs: Inputs, now: datetime) -> None:
        self.spec, self.inputs, self.now = spec, inputs, now
        self.st: Json = json.loads(json.dumps(state or {}))
        self.st.setdefault("phase", "Idle")
        self.stamp = format_time(now)
        self.events: list[Event] = []
        self.move: AliasMove | None = None

    def event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    @property
    def run(self) -> Json:
        current = self.st.get("current")
        return current if isinstance(current, dict) else {}

    def finish(self, phase: str, outcome: str, reason: str, message: str) -> None:
        """End the current run: into the history, newest first, bounded."""
        run = {**self.run, "finishedAt": self.stamp, "outcome": outcome, "reason": reason}
        history = [run, *(self.st.get("history") or [])][: d.RETRAIN_HISTORY_LIMIT]
        self.st.update(phase=phase, message=message, history=history)
        self.st.pop("current", None)


def _result(job: JobState) -> Json:
    try:
        out = json.loads(job.message) if job.message else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _failure(job: JobState) -> str:
    """Why a Job failed, from Kubernetes' own words (never the container's logs)."""
    parts = [job.reason or "failed"]
    if job.exit_code is not None:
        parts.append(f"exit code {job.exit_code}")
    return f"Job {job.name}: " + ", ".join(parts)


def _trigger(s: _Step) -> tuple[str, str, str] | None:
    """(trigger, alert, value) when a run is due, else None."""
    if s.inputs.control == "retrain":
        return "control", "", ""
    if s.inputs.firing:
        name, value = max(s.inputs.firing, key=lambda a: a[1])
        return "alert", name, f"{value:g}"
    interval = s.spec.interval_seconds
    since = parse_time(s.st.get("lastStartedAt") or s.st.get("watchingSince"))
    if interval and since is not None and s.now - since >= timedelta(seconds=interval):
        return "interval", "", ""
    return None


def _hold(s: _Step) -> str:
    """Why a due run may not start now ("" when it may)."""
    if s.inputs.rollout_active:
        return "a rollout is in progress"
    if s.inputs.stable is None:
        if s.inputs.target is not None:
            return "the stable model has no pinned digest yet"
        return "the stable model is not a resolved registry version yet"
    last = parse_time(s.st.get("lastStartedAt"))
    cooldown = timedelta(seconds=s.spec.cooldown_seconds)
    if last is not None and s.now - last < cooldown:
        return f"cooldown until {format_time(last + cooldown)}"
    starts = [t for t in (parse_time(x) for x in s.st.get("starts") or []) if t is not None]
    recent = sorted(t for t in starts if s.now - t < DAY)
    if len(recent) >= s.spec.max_per_day:
        return (
            f"{len(recent)} runs in 24 h (maxPerDay {s.spec.max_per_day}) until "
            f"{format_time(recent[-s.spec.max_per_day] + DAY)}"
        )
    return ""


def _start(s: _Step, trigger: tuple[str, str, str], stable: Stable, prefix: str) -> None:
    n = int(s.st.get("runs") or 0) + 1
    kind, alert, value = trigger
    data = s.spec.labelled_data
    since = s.now - timedelta(seconds=data.window_seconds)
    # A drift caught in seconds has few labelled rows of the new world yet: an alert's run
    # waits for more (the trainer reads the store once the window has ended).
    until = s.now + timedelta(seconds=data.collect_seconds if kind == "alert" else 0)
    run: Json = {
        "id": str(n),
        "trigger": kind,
        "since": format_time(since),
        "until": format_time(until),
        "startedAt": s.stamp,
        "trainJob": job_name(prefix, "train", str(n)),
        "currentURI": stable.uri,
        "currentSHA256": stable.sha256,
        "currentVersion": stable.version,
    }
    if s.inputs.target is not None:  # no registry: the run's bundle and version are ours
        output, version = retrainoutput.run_output(s.inputs.target, str(n))
        run.update(outputURI=output, outputVersion=version)
    if alert:
        run.update(alert=alert, value=value)
        if s.inputs.firing_since is not None:
            # The drift began then: the trainer profiles the new bundle's inputs from there.
            run["referenceSince"] = format_time(max(s.inputs.firing_since, since))
    starts = [x for x in s.st.get("starts") or [] if (t := parse_time(x)) and s.now - t < DAY]
    s.st.update(
        phase="Training",
        runs=n,
        current=run,
        lastStartedAt=s.stamp,
        starts=[*starts, s.stamp][-100:],
        message=f"run {n}: training on {run['since']} .. {run['until']}",
    )
    s.st.pop("held", None)
    why = {
        "alert": f"alert {alert} firing for the stable {stable.version} (value {value})",
        "control": "the retrain control",
        "interval": f"the schedule (every {s.spec.interval_seconds} s)",
    }[kind]
    s.event("Normal", "RetrainStarted", f"run {n} started by {why}: Job {run['trainJob']}")


def _idle(s: _Step, prefix: str) -> None:
    trigger = _trigger(s)
    if trigger is None:
        s.st.pop("held", None)  # the next held trigger is news again
        return
    why = _hold(s)
    if why:
        if s.st.get("held") != why or s.inputs.control == "retrain":
            what = "the retrain control" if trigger[0] == "control" else f"an {trigger[0]} trigger"
            s.event("Normal", "RetrainHeld", f"{what} is held: {why}")
        s.st["held"] = why
        return
    assert s.inputs.stable is not None
    _start(s, trigger, s.inputs.stable, prefix)


def _training(s: _Step, prefix: str) -> None:
    run = s.run
    job = s.inputs.jobs.get(str(run.get("trainJob", "")))
    if job is None or job.state == "running":
        return
    if job.state == "failed":
        why = _failure(job)
        s.event("Warning", "RetrainFailed", f"run {run.get('id')}: trainer failed: {why}")
        s.finish("Failed", "Failed", why, f"run {run.get('id')} failed: {why}")
        return
    result = _result(job)
    version = str(result.get(c.RESULT_VERSION, ""))
    uri = str(result.get(c.RESULT_MODEL_URI, ""))
    sha = str(result.get(c.RESULT_SHA256, ""))
    why = _bad_result(job, run, version, uri, sha)
    if why:
        s.event("Warning", "RetrainFailed", f"run {run.get('id')}: {why}")
        s.finish("Failed", "Failed", why, f"run {run.get('id')} failed: {why}")
        return
    gate = job_name(prefix, "gate", str(run.get("id")))
    s.st["current"] = {**run, "version": version, "modelURI": uri, "sha256": sha, "gateJob": gate}
    s.st.update(phase="Gating", message=f"run {run.get('id')}: gating version {version}")
    s.event("Normal", "RetrainGating", f"run {run.get('id')} trained version {version}: Job {gate}")


def _bad_result(job: JobState, run: Json, version: str, uri: str, sha: str) -> str:
    """Why a trainer's answer cannot be gated ("" when it can)."""
    if not version or len(sha) != 64 or not uri:
        return f"Job {job.name} succeeded without a result ({c.TERMINATION_LOG} must hold " + (
            '{"version", "modelURI", "sha256"})'
        )
    if "outputURI" in run:
        return retrainoutput.bad_answer(job.name, run, version, uri)
    if not uri.startswith(sources.MODELS_SCHEME):
        return f"Job {job.name} answered {uri}, not a registry version models:/NAME/VERSION"
    return ""


def _gating(s: _Step) -> None:
    run = s.run
    job = s.inputs.jobs.get(str(run.get("gateJob", "")))
    if job is None or job.state == "running":
        return
    result = _result(job)
    summary = str(result.get(c.RESULT_SUMMARY, ""))[:1024]
    version, rid = str(run.get("version", "")), run.get("id")
    verdict = result.get(c.RESULT_PASSED)
    if verdict is not False and (job.state == "failed" or verdict is not True):
        # No verdict is never a pass: a gate that exited 0 without its answer decided nothing.
        why = _failure(job) if job.state == "failed" else f"Job {job.name} gave no verdict"
        s.event("Warning", "RetrainFailed", f"run {rid}: the gate could not decide: {why}")
        s.finish("Failed", "Failed", why, f"run {rid} failed: {why}")
        return
    passed = verdict is True
    s.st["current"] = gatetags.record(run, result, passed, summary)
    if not passed:
        s.event("Warning", "GateFailed", f"run {rid}: version {version} rejected: {summary}")
        s.finish("Rejected", "Rejected", "GateFailed", f"version {version} rejected: {summary}")
        return
    s.event("Normal", "GatePassed", f"run {rid}: version {version} passed: {summary}")
    if s.spec.approval == "manual":
        s.st.update(
            phase="AwaitingApproval",
            message=f"version {version} passed the gate; waiting for the promote control",
        )
        s.event("Normal", "RetrainAwaitingApproval", f"version {version} waits for promote")
        return
    s.st.update(phase="Promoting", message=f"promoting version {version}")


def step(spec: RetrainSpec, state: Json, inputs: Inputs, now: datetime, prefix: str) -> Decision:
    """The next ``status.retrain`` and what to do; ``prefix`` names the Jobs (``job_prefix``)."""
    s = _Step(spec, state, inputs, now)
    s.st.setdefault("watchingSince", s.stamp)
    _check_alerts(s)
    _check_adopted(s)
    phase = s.st["phase"]
    if phase in ACTIVE_PHASES and not s.run:
        s.st["phase"] = phase = "Idle"  # a state written by hand: start over
    if phase == "Training":
        _training(s, prefix)
    elif phase == "Gating":
        _gating(s)
    elif phase == "AwaitingApproval" and inputs.control == "promote":
        s.event("Normal", "RetrainApproved", f"version {s.run.get('version')} approved")
        s.st.update(phase="Promoting", message="approved: promoting")
    if s.st["phase"] == "Promoting" and inputs.target is not None:
        _adopt(s, inputs.target)
    if s.st["phase"] not in ACTIVE_PHASES:
        _idle(s, prefix)
    elif inputs.control == "retrain":
        s.event(
            "Normal",
            "RetrainHeld",
            f"the retrain control is held: run {s.run.get('id')} is in progress",
        )
    if s.st["phase"] == "Promoting":
        s.move = AliasMove(str(s.run.get("version", "")))
    return Decision(
        state=s.st,
        events=tuple(s.events),
        jobs=_wanted(s.st),
        delete=_old_jobs(s.st, inputs.jobs),
        move_alias=s.move,
    )


def _adopt(s: _Step, t: retrainoutput.Target) -> None:
    """No registry: the version that passed is adopted in status (``retrainoutput``)."""
    s.st[retrainoutput.KEY], message = retrainoutput.adopt(t, s.run, s.stamp)
    s.event("Normal", "RetrainPromoted", f"run {s.run.get('id')}: {message}")
    s.finish("Idle", "Promoted", "GatePassed", message)


def _check_adopted(s: _Step) -> None:
    if (message := retrainoutput.ended(s.inputs.target, s.st.get(retrainoutput.KEY))) is not None:
        s.st.pop(retrainoutput.KEY)
        s.event("Normal", "RetrainAdoptionEnded", message)


def _check_alerts(s: _Step) -> None:
    """A trigger alert that is not a loaded alerting rule never fires: say so once per change
    (None: the rules were not read, nothing is known)."""
    if s.inputs.unloaded is None:
        return
    unloaded = ", ".join(s.inputs.unloaded)
    if unloaded and s.st.get("unloadedAlerts") != unloaded:
        s.event("Warning", "RetrainTriggerUnknown", f"not loaded alerting rules: {unloaded}")
    s.st["unloadedAlerts"] = unloaded
    if not unloaded:
        s.st.pop("unloadedAlerts")


def alias_moved(
    spec: RetrainSpec, state: Json, now: datetime, alias: str, error: str = ""
) -> Decision:
    """After the alias move of a Promoting run: the run is Promoted, or (``error``) it stays
    Promoting and the next reconcile tries again; one Event per distinct message."""
    s = _Step(spec, state, Inputs(), now)
    run, version = s.run, str(s.run.get("version", ""))
    if error:
        message = f"moving alias {alias} to version {version} failed: {error}"
        if s.st.get("message") != message:
            s.event("Warning", "RetrainPromoteFailed", message)
        s.st["message"] = message
        return Decision(state=s.st, events=tuple(s.events), jobs=_wanted(s.st))
    summary = str(run.get("gateSummary", ""))
    message = f"alias {alias} -> version {version} (gate: {summary}); rolling out"
    s.event("Normal", "RetrainPromoted", f"run {run.get('id')}: {message}")
    s.finish("Idle", "Promoted", "GatePassed", message)
    return Decision(state=s.st, events=tuple(s.events))


def _wanted(st: Json) -> tuple[JobKind, ...]:
    """The Job the current phase waits for (re-applied if it is missing: a crash before the
    status write, or a Job deleted by hand); a finished phase's Jobs are never re-run."""
    phase = st.get("phase")
    return ("train",) if phase == "Training" else ("gate",) if phase == "Gating" else ()


def _old_jobs(st: Json, jobs: dict[str, JobState]) -> tuple[str, ...]:
    """Jobs of runs older than the last ``RETRAIN_JOBS_KEPT`` (their logs are kept that long)."""
    keep = set()
    runs = [run for run in [st.get("current"), *(st.get("history") or [])] if run]
    for run in runs[: d.RETRAIN_JOBS_KEPT]:
        keep |= {str(run.get("trainJob", "")), str(run.get("gateJob", ""))}
    return tuple(sorted(name for name in jobs if name not in keep))


def job_prefix(name: str) -> str:
    """Job names stay label values (63 characters) with the longest suffix ("-train-100")."""
    if len(name) <= 40:
        return name
    return f"{name[:33]}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def job_name(prefix: str, kind: JobKind, run: str) -> str:
    return f"{prefix}-{kind}-{run}"

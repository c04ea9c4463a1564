"""The rollout engine: a pure function of (spec, status, observations, now).

``reconcile`` returns the new status and the ``Actions`` (the desired state of every child).
There is no I/O, no clock and no kopf here. All progress lives in the status, and the actions
are a function of the new status alone, so an operator killed at any moment (before or after
it applied the actions, before or after it wrote the status) repeats the same decision on
restart: no step is skipped and no weight change happens twice.

The rollout is a list of steps (``Spec.plan``); ``status.currentStep`` indexes it. A step is
*entered* (its side effects recorded in the status) and later *completed* by an observation
(pods ready, time passed, analysis passed) or a control. Analysis runs in the background of
every rollout: a failed sample rolls back at once; inconclusive samples never promote and,
after ``consecutiveErrorLimit`` in a row, roll back or pause.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modeldeploy.operator import defaults as d
from modeldeploy.operator.conditions import set_condition
from modeldeploy.operator.routers import replica_split
from modeldeploy.operator.model import (
    Actions,
    Analysis,
    AnalysisSample,
    Check,
    Event,
    Json,
    Observations,
    Pause,
    Promote,
    ScaleDownPrevious,
    SetWeight,
    SlotDeployment,
    Spec,
    Step,
    Template,
    WaitReady,
    format_time,
    other_slot,
    parse_time,
)

_CONTROL = re.compile(r"^\s*(pause|resume|promote-full|promote|abort|retry)(?![-a-z])")

# Share of the interval after which a new sample is due: the operator's poller and the
# ModelDeployment's interval are not in lock-step, so allow some jitter.
_INTERVAL_SLACK = 0.8


def parse_control(value: str) -> str | None:
    """The verb of a control annotation ("promote", "promote/2" -> "promote")."""
    match = _CONTROL.match(value)
    return match.group(1) if match else None


@dataclass
class _Run:
    spec: Spec
    st: Json
    obs: Observations
    now: datetime
    events: list[Event] = field(default_factory=list)

    # --- small helpers -------------------------------------------------------------------

    @property
    def ts(self) -> str:
        return format_time(self.now)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))  # type: ignore[arg-type]

    def since(self, key: str) -> float:
        at = parse_time(self.st.get(key))
        return math.inf if at is None else (self.now - at).total_seconds()

    @property
    def active(self) -> bool:
        return bool(self.st.get("candidateRevision"))

    @property
    def plan(self) -> list[Step]:
        return self.spec.plan()

    @property
    def step(self) -> Step | None:
        if not self.active:
            return None
        plan = self.plan
        idx = min(int(self.st.get("currentStep") or 0), len(plan) - 1)
        return plan[idx]

    def candidate_replicas(self) -> int:
        return replica_split(self.spec, int(self.st.get("canaryWeight") or 0), True)[1]

    def candidate_serves(self) -> bool:
        slot = self.st.get("candidateSlot")
        return bool(slot) and self.obs.slot(slot).serves(self.st["candidateRevision"],
                                                         self.candidate_replicas())

    def stable_serves(self) -> bool:
        slot = self.st["stableSlot"]
        stable = replica_split(self.spec, int(self.st.get("canaryWeight") or 0), self.active)[0]
        if self.st.get("promoted"):
            stable = self.spec.replicas
        return self.obs.slot(slot).serves(self.st["stableRevision"], stable)

    def record_slot(self, slot: str, template: Template, serve_role: str) -> None:
        self.st.setdefault("slots", {})[slot] = {
            **template.to_json(), "version": template.model.version,
            "revision": template.revision, "serveRole": serve_role}

    def push_history(self, outcome: str, reason: str, message: str) -> None:
        entry = {"version": self.st.get("candidateVersion", ""),
                 "revision": self.st.get("candidateRevision", ""),
                 "outcome": outcome, "reason": reason, "message": message,
                 "startedAt": self.st.get("rolloutStartedAt") or self.ts,
                 "finishedAt": self.ts}
        self.st["history"] = ([entry] + list(self.st.get("history") or []))[:d.HISTORY_LIMIT]

    def clear_rollout(self) -> None:
        for key in ("candidateSlot", "candidateVersion", "candidateRevision", "stepStartedAt",
                    "promoted", "previousSlot", "scaleDownAt"):
            self.st.pop(key, None)
        self.st["canaryWeight"] = 0
        self.st["currentStep"] = 0
        self.st["consecutiveErrors"] = 0

    # --- the run ------------------------------------------------------------------------

    def run(self) -> None:
        st, spec = self.st, self.spec
        st["strategy"] = spec.strategy
        st["observedGeneration"] = spec.generation
        verb = self.take_control()
        if not st.get("stableSlot"):
            self.first_deploy()
        self.follow_spec(verb)
        if self.active:
            self.apply_control(verb)
        elif verb in ("pause", "resume"):
            self.apply_control(verb)
        elif verb in ("promote", "promote-full", "abort"):
            self.event("Normal", "ControlIgnored", f"{verb}: no rollout in progress")
        if self.active:
            self.take_sample()
        if self.active:
            self.advance()
        self.watch_stable_drift()
        self.summarise()

    def take_control(self) -> str | None:
        value = self.obs.control
        if not value or value == self.st.get("lastControl"):
            return None
        self.st["lastControl"] = value
        verb = parse_control(value)
        if verb is None:
            self.event("Warning", "UnknownControl",
                       f"{d.ANNOTATION_CONTROL}={value!r}: expected one of "
                       + ", ".join(d.CONTROLS))
        return verb

    def first_deploy(self) -> None:
        template = self.spec.template
        self.record_slot("blue", template, d.ROLE_STABLE)
        self.st.update(stableSlot="blue", stableVersion=template.model.version,
                       stableRevision=template.revision, rolloutStartedAt=self.ts,
                       canaryWeight=0, currentStep=0)
        self.event("Normal", "Deploying",
                   f"deploying {template.model.version} into slot blue")

    def follow_spec(self, verb: str | None) -> None:
        """Start, supersede, cancel or retry a rollout when the spec's revision changed."""
        st, template = self.st, self.spec.template
        rev = template.revision
        if verb == "retry":
            if st.get("abortedRevision"):
                self.event("Normal", "Retry", f"retrying {template.model.version}")
                st.pop("abortedRevision", None)
            elif not self.active:
                self.event("Normal", "ControlIgnored", "retry: nothing was rolled back")
        if self.active:
            if rev == st["candidateRevision"]:
                return
            if st.get("promoted"):
                self.finish()  # the candidate already serves as stable: keep it
            else:
                outcome = "Cancelled" if rev == st["stableRevision"] else "Superseded"
                self.push_history(outcome, outcome,
                                  f"spec changed to {template.model.version}")
                self.event("Normal", outcome,
                           f"rollout of {st.get('candidateVersion')} {outcome.lower()}: "
                           f"spec changed to {template.model.version}")
                self.clear_rollout()
        if rev == st["stableRevision"]:
            if st.pop("abortedRevision", None):
                self.event("Normal", "Reverted", f"spec is back at the stable "
                                                 f"{template.model.version}")
            return
        if rev == st.get("abortedRevision"):
            return
        st.pop("abortedRevision", None)
        if not st.get("stableServed") and not self.obs.slot(st["stableSlot"]).ready_replicas:
            # Nothing serves and nothing ever did: there is nothing to protect.
            self.record_slot(st["stableSlot"], template, d.ROLE_STABLE)
            st.update(stableVersion=template.model.version, stableRevision=rev,
                      rolloutStartedAt=self.ts)
            self.event("Normal", "Deploying", f"replacing the never-ready stable with "
                                              f"{template.model.version} in place")
            return
        self.start_rollout()

    def start_rollout(self) -> None:
        st, template = self.st, self.spec.template
        slot = other_slot(st["stableSlot"])
        self.record_slot(slot, template, d.ROLE_CANDIDATE)
        st.update(candidateSlot=slot, candidateVersion=template.model.version,
                  candidateRevision=template.revision, rolloutStartedAt=self.ts,
                  canaryWeight=0, currentStep=0, consecutiveErrors=0)
        st["analysis"] = {}
        self.event("Normal", "RolloutStarted",
                   f"rolling out {template.model.version} into slot {slot} "
                   f"({self.spec.strategy}); stable {st['stableVersion']} in slot "
                   f"{st['stableSlot']}")
        self.enter(0)

    def apply_control(self, verb: str | None) -> None:
        st = self.st
        if verb == "pause":
            if not st.get("paused"):
                st.update(paused=True, pauseStartedAt=self.ts)
                self.event("Normal", "Paused", "paused by control")
        elif verb == "resume":
            was_paused = st.pop("paused", None)
            st.pop("pauseStartedAt", None)
            if isinstance(self.step, Pause) and self.step.seconds is None:
                self.event("Normal", "Resumed", "resumed: indefinite pause ended")
                self.complete()
            elif was_paused:
                self.event("Normal", "Resumed", "resumed by control")
        elif verb == "promote":
            self.event("Normal", "Promote", f"step {st.get('currentStep', 0)} skipped by "
                                            "promote control")
            st.pop("paused", None)
            self.complete()
        elif verb == "promote-full":
            st.pop("paused", None)
            target = next(i for i, s in enumerate(self.plan) if isinstance(s, Promote))
            if int(st.get("currentStep") or 0) < target:
                self.event("Normal", "PromoteFull", "promoting at once by control")
                self.enter(target)
        elif verb == "abort":
            self.rollback("Aborted", "aborted by control")

    # --- analysis -----------------------------------------------------------------------

    def analysis_role(self) -> str:
        step = self.step
        if isinstance(step, Analysis):
            return step.role
        return d.ROLE_STABLE if self.st.get("promoted") else d.ROLE_CANDIDATE

    def sample_is_new(self, sample: AnalysisSample) -> bool:
        last = parse_time((self.st.get("analysis") or {}).get("lastSampleAt"))
        started = parse_time(self.st.get("rolloutStartedAt"))
        if started is not None and sample.at < started:
            return False
        if last is None:
            return True
        return (sample.at - last).total_seconds() >= self.spec.analysis.interval * _INTERVAL_SLACK

    def take_sample(self) -> None:
        sample = self.obs.analysis
        if sample is None or not self.sample_is_new(sample):
            return
        outcome, message, results = judge(sample, self.spec.analysis.alerts,
                                          self.analysis_role(), self.spec.analysis.checks)
        at = format_time(sample.at)
        analysis = self.st.setdefault("analysis", {})
        analysis.update(lastSampleAt=at, outcome=outcome, message=message,
                        results=[{**r, "at": at} for r in results][:d.ANALYSIS_RESULTS_LIMIT])
        if outcome == "Failed":
            self.rollback("AnalysisFailed", message)
        elif outcome == "Inconclusive":
            errors = int(self.st.get("consecutiveErrors") or 0) + 1
            self.st["consecutiveErrors"] = errors
            limit = self.spec.analysis.consecutive_error_limit
            self.event("Warning", "AnalysisInconclusive", f"{message} ({errors}/{limit})")
            if errors >= limit:
                if self.spec.analysis.on_error_limit == "pause":
                    if not self.st.get("paused"):
                        self.st.update(paused=True, pauseStartedAt=self.ts)
                        self.event("Warning", "Paused", f"paused after {errors} inconclusive "
                                                        f"analyses: {message}")
                else:
                    self.rollback("AnalysisInconclusive",
                                  f"{errors} inconclusive analyses in a row: {message}")
        else:
            self.st["consecutiveErrors"] = 0
            analysis["passedSamples"] = int(analysis.get("passedSamples") or 0) + 1

    def watch_stable_drift(self) -> None:
        """Surface input drift of the stable model as the ``InputDrift`` condition and an
        Event on each change: no rollback (there is nothing to roll back to), but the signal a
        retraining pipeline watches. Samples Prometheus could not give change nothing."""
        sample = self.obs.analysis
        if sample is None or sample.error:
            return
        values = [v for name, v in sample.firing.get(d.ROLE_STABLE, ()) if name == d.ALERT_DRIFT]
        old = next((c for c in self.st.get("conditions") or []
                    if c.get("type") == d.CONDITION_INPUT_DRIFT), None)
        version = self.st.get("stableVersion", "")
        if values:
            message = (f"{d.ALERT_DRIFT} firing for the stable {version} "
                       f"(value {max(values):g})")
            if not old or old.get("status") != "True":
                self.event("Warning", "StableDrift", message)
            set_condition(self.st, d.CONDITION_INPUT_DRIFT, "True", d.ALERT_DRIFT, message,
                          self.ts, self.spec.generation)
        elif old and old.get("status") == "True":
            message = f"no input drift on the stable {version}"
            self.event("Normal", "StableDriftCleared", message)
            set_condition(self.st, d.CONDITION_INPUT_DRIFT, "False", "NoDrift", message,
                          self.ts, self.spec.generation)

    # --- steps --------------------------------------------------------------------------

    def enter(self, index: int) -> None:
        """Record step ``index`` as current; its effect on the desired state is immediate."""
        st = self.st
        st["currentStep"] = index
        st["stepStartedAt"] = self.ts
        st.setdefault("analysis", {})["passedSamples"] = 0
        step = self.plan[index]
        if isinstance(step, SetWeight):
            if step.weight != st.get("canaryWeight"):
                st["canaryWeight"] = step.weight
                self.event("Normal", "WeightSet",
                           f"step {index}: {step.weight}% of traffic to "
                           f"{st['candidateVersion']}")
        elif isinstance(step, Promote):
            self.promote()
        elif isinstance(step, ScaleDownPrevious):
            st["scaleDownAt"] = format_time(self.now + timedelta(seconds=step.delay))
        elif isinstance(step, Pause):
            self.event("Normal", "StepPaused", f"step {index}: pause "
                       + ("until promoted" if step.seconds is None else f"{step.seconds:g}s"))
        elif isinstance(step, Analysis):
            self.event("Normal", "AnalysisStep", f"step {index}: analysing the "
                                                 f"{step.role} for {step.seconds:g}s")

    def complete(self) -> None:
        """The current step is done: enter the next one (or finish)."""
        if not self.active:
            return
        index = int(self.st.get("currentStep") or 0)
        if isinstance(self.plan[index], ScaleDownPrevious):
            self.finish()
        else:
            self.enter(index + 1)

    def step_done(self, step: Step) -> bool:
        if isinstance(step, (SetWeight, WaitReady)):
            return self.candidate_serves()
        if isinstance(step, Pause):
            return step.seconds is not None and self.since("stepStartedAt") >= step.seconds
        if isinstance(step, Analysis):
            analysis = self.st.get("analysis") or {}
            return (self.since("stepStartedAt") >= step.seconds
                    and analysis.get("outcome") == "Passed"
                    and int(analysis.get("passedSamples") or 0) >= 1)
        if isinstance(step, Promote):
            return True
        if isinstance(step, ScaleDownPrevious):
            return self.since("scaleDownAt") >= 0
        raise AssertionError(step)  # pragma: no cover

    def promotion_allowed(self) -> bool:
        """Never promote on an inconclusive (or missing) analysis."""
        return (self.st.get("analysis") or {}).get("outcome") == "Passed"

    def advance(self) -> None:
        for _ in range(len(self.plan) + 1):
            if not self.active or self.st.get("paused"):
                return
            step = self.step
            index = int(self.st.get("currentStep") or 0)
            if isinstance(step, (SetWeight, WaitReady)) and not self.candidate_serves() \
                    and self.since("stepStartedAt") > self.spec.progress_deadline:
                reason = self.obs.slot(self.st["candidateSlot"]).reason or "not ready"
                self.rollback("ProgressDeadlineExceeded",
                              f"candidate not ready after {self.spec.progress_deadline:g}s: "
                              f"{reason}")
                return
            assert step is not None
            if not self.step_done(step):
                return
            nxt = self.plan[index + 1] if index + 1 < len(self.plan) else None
            if isinstance(nxt, Promote) and not self.promotion_allowed():
                return
            self.complete()

    def promote(self) -> None:
        st = self.st
        st["stableServed"] = True
        new, old = st["candidateSlot"], st["stableSlot"]
        st.update(previousSlot=old, stableSlot=new, stableVersion=st["candidateVersion"],
                  stableRevision=st["candidateRevision"], promoted=True, canaryWeight=0)
        self.event("Normal", "Promoted", f"{st['candidateVersion']} is stable (slot {new}); "
                                         f"previous slot {old} kept until the rollout ends")

    def finish(self) -> None:
        st = self.st
        version = st["candidateVersion"]
        self.push_history("Promoted", "Promoted", f"{version} promoted")
        self.event("Normal", "RolloutCompleted", f"{version} rolled out; previous slot "
                                                 f"{st.get('previousSlot')} scaled down")
        self.clear_rollout()

    def rollback(self, reason: str, message: str) -> None:
        st = self.st
        version = st.get("candidateVersion", "")
        if st.get("promoted") and st.get("previousSlot"):
            prev = st["previousSlot"]
            record = st["slots"][prev]
            st.update(stableSlot=prev, stableVersion=record["version"],
                      stableRevision=record["revision"])
        st["abortedRevision"] = st["candidateRevision"]
        self.push_history("RolledBack" if reason != "Aborted" else "Aborted", reason, message)
        self.event("Warning", "RolledBack", f"rolled back {version}: {reason}: {message}")
        self.clear_rollout()
        st.pop("paused", None)
        st.pop("pauseStartedAt", None)

    # --- phase, conditions, message -----------------------------------------------------

    def summarise(self) -> None:
        st, spec = self.st, self.spec
        gen = spec.generation
        last = (st.get("history") or [{}])[0]
        if self.active:
            step = self.step
            waiting = isinstance(step, Pause) and step.seconds is None
            phase = "Paused" if st.get("paused") or waiting else "Progressing"
            idx = st.get("currentStep", 0)
            if st.get("paused"):
                message = f"paused at step {idx}"
            elif waiting:
                message = f"step {idx}: waiting for promote"
            else:
                message = (f"step {idx}/{len(self.plan) - 1}: {_describe(step)}, "
                           f"{st.get('canaryWeight', 0)}% to {st['candidateVersion']}")
            ready = ("False", "RolloutInProgress", message)
            progressing = ("True", "RolloutPaused" if phase == "Paused" else "RolloutInProgress",
                           message)
            degraded = ("False", "RolloutInProgress", "")
            reconciling = ("True", phase, message)
            stalled = ("False", phase, "")
        elif st.get("abortedRevision") and st["abortedRevision"] == spec.template.revision:
            phase = "Degraded"
            message = (f"{spec.template.model.version} rolled back ({last.get('reason')}: "
                       f"{last.get('message')}); serving {st['stableVersion']}")
            ready = ("False", last.get("reason") or "RolledBack", message)
            progressing = ("False", "RolledBack", message)
            degraded = ("True", last.get("reason") or "RolledBack", message)
            reconciling = ("False", "RolledBack", "")
            stalled = ("True", "RolledBack", message)
        elif self.stable_serves():
            st["stableServed"] = True
            phase = "Healthy"
            message = f"{st['stableVersion']} serves in slot {st['stableSlot']}"
            ready = ("True", "Healthy", message)
            progressing = ("False", "RolloutComplete", message)
            degraded = ("False", "Healthy", "")
            reconciling = ("False", "Healthy", "")
            stalled = ("False", "Healthy", "")
        elif self.since("rolloutStartedAt") > spec.progress_deadline \
                and st.get("phase") != "Healthy":
            phase = "Degraded"
            reason = self.obs.slot(st["stableSlot"]).reason or "not ready"
            message = (f"{st['stableVersion']} not ready in slot {st['stableSlot']} after "
                       f"{spec.progress_deadline:g}s: {reason}")
            ready = ("False", "ProgressDeadlineExceeded", message)
            progressing = ("False", "ProgressDeadlineExceeded", message)
            degraded = ("True", "ProgressDeadlineExceeded", message)
            reconciling = ("False", "ProgressDeadlineExceeded", "")
            stalled = ("True", "ProgressDeadlineExceeded", message)
        else:
            phase = "Progressing"
            reason = self.obs.slot(st["stableSlot"]).reason
            message = (f"waiting for {st['stableVersion']} in slot {st['stableSlot']}"
                       + (f": {reason}" if reason else ""))
            ready = ("False", "Deploying", message)
            progressing = ("True", "Deploying", message)
            degraded = ("False", "Deploying", "")
            reconciling = ("True", "Deploying", message)
            stalled = ("False", "Deploying", "")
        if phase != st.get("phase") and st.get("phase") is not None:
            self.event("Warning" if phase == "Degraded" else "Normal", f"Phase{phase}",
                       f"phase {st.get('phase')} -> {phase}: {message}")
        st["phase"] = phase
        st["message"] = message
        for type_, (status, reason, msg) in (("Ready", ready), ("Progressing", progressing),
                                             ("Degraded", degraded),
                                             ("Reconciling", reconciling),
                                             ("Stalled", stalled)):
            set_condition(st, type_, status, reason, msg, self.ts, gen)

    # --- the desired state --------------------------------------------------------------

    def actions(self) -> Actions:
        st, spec = self.st, self.spec
        weight = int(st.get("canaryWeight") or 0)
        stable_n, cand_n = replica_split(spec, weight, self.active)
        replicas: dict[str, int] = {s: 0 for s in (st.get("slots") or {})}
        roles: dict[str, str] = {}
        stable = st["stableSlot"]
        if st.get("promoted"):
            replicas[stable] = spec.replicas
            replicas[st["previousSlot"]] = spec.replicas
            roles[st["previousSlot"]] = d.ROLE_PREVIOUS
        else:
            replicas[stable] = stable_n
            if self.active:
                replicas[st["candidateSlot"]] = cand_n
                roles[st["candidateSlot"]] = d.ROLE_CANDIDATE
        roles[stable] = d.ROLE_STABLE
        deployments = tuple(
            SlotDeployment(slot=slot, template=Template.from_json(record),  # type: ignore[arg-type]
                           serve_role=record.get("serveRole", d.ROLE_STABLE),
                           replicas=replicas[slot], revision=record["revision"])
            for slot, record in sorted((st.get("slots") or {}).items()))
        candidate = None if st.get("promoted") or not self.active else st["candidateSlot"]
        return Actions(
            deployments=deployments, pod_roles=roles, stable_slot=stable,
            candidate_slot=candidate,
            weight=weight if candidate else 0,
            mirror=bool(candidate) and spec.strategy == "shadow",
            events=tuple(self.events))


def _describe(step: Step | None) -> str:
    if isinstance(step, SetWeight):
        return f"setWeight {step.weight}"
    if isinstance(step, Pause):
        return "pause" + ("" if step.seconds is None else f" {step.seconds:g}s")
    if isinstance(step, Analysis):
        return f"analysis {step.seconds:g}s ({step.role})"
    if isinstance(step, WaitReady):
        return "waiting for the candidate to be ready"
    if isinstance(step, Promote):
        return "promoting"
    if isinstance(step, ScaleDownPrevious):
        return "promoted; scaling down the previous slot"
    return "idle"


_COMPARE = re.compile(r"^\s*result\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


def condition_holds(condition: str, value: float) -> bool:
    """Evaluate ``result OP NUMBER`` (the grammar the CRD admits) without eval()."""
    match = _COMPARE.match(condition)
    if not match:
        raise ValueError(f"bad condition {condition!r}: expected 'result OP NUMBER'")
    op, bound = match.group(1), float(match.group(2))
    return {"<": value < bound, "<=": value <= bound, ">": value > bound,
            ">=": value >= bound, "==": value == bound, "!=": value != bound}[op]


def judge(sample: AnalysisSample, alerts: tuple[str, ...], role: str,
          checks: tuple[Check, ...] = ()) -> tuple[str, str, list[Json]]:
    """Passed, Failed or Inconclusive, a message naming what decided, and the results.

    A named alert firing for ``role`` fails; a failed check fails; an unreachable
    Prometheus, a role Prometheus does not scrape, or a check without a value is
    inconclusive.
    """
    if sample.error:
        return "Inconclusive", f"Prometheus: {sample.error}", []
    results: list[Json] = []
    failed: list[str] = []
    unknown: list[str] = []
    watched = set(alerts)
    for name, value in sample.firing.get(role, ()):
        if name in watched:
            results.append({"kind": "alert", "name": name, "value": f"{value:g}",
                            "outcome": "Failed"})
            failed.append(f"alert {name} firing for the {role} (value {value:g})")
    specs = {c.name: c for c in checks}
    for res in sample.checks:
        check = specs.get(res.name)
        if check is None:
            continue
        if res.value is None or math.isnan(res.value):
            results.append({"kind": "check", "name": res.name, "value": "",
                            "outcome": "Inconclusive"})
            unknown.append(f"check {res.name}: {res.error or 'no data'}")
            continue
        cond = ""
        if check.failure and condition_holds(check.failure, res.value):
            cond = check.failure
        elif check.success and not condition_holds(check.success, res.value):
            cond = f"not ({check.success})"
        outcome = "Failed" if cond else "Passed"
        results.append({"kind": "check", "name": res.name, "value": f"{res.value:g}",
                        "outcome": outcome})
        if cond:
            failed.append(f"check {res.name} = {res.value:g} ({cond})")
    missing = {c.name for c in checks} - {r.name for r in sample.checks}
    unknown += [f"check {name}: not evaluated" for name in sorted(missing)]
    if failed:
        return "Failed", "; ".join(failed), results
    if role not in sample.scraped:
        unknown.append(f"no metrics from the {role} pods in Prometheus")
    if unknown:
        return "Inconclusive", "; ".join(unknown), results
    return "Passed", f"no alert firing for the {role}" + (
        f", {len(sample.checks)} checks passed" if sample.checks else ""), results


def reconcile(spec: Spec, status: Json, observations: Observations,
              now: datetime) -> tuple[Json, Actions]:
    """The new status and the desired state; pure (the input status is not modified)."""
    run = _Run(spec=spec, st=copy.deepcopy(status or {}), obs=observations, now=now)
    run.run()
    return run.st, run.actions()


def analysis_role(spec: Spec, status: Json) -> str | None:
    """Whose alerts and checks the next sample should evaluate, or None (no rollout)."""
    run = _Run(spec=spec, st=copy.deepcopy(status or {}), obs=Observations(),
               now=datetime.min)
    return run.analysis_role() if run.active else None


def sample_due(spec: Spec, status: Json, at: datetime) -> bool:
    """Whether a sample taken at ``at`` would be consumed (so checks are worth running)."""
    run = _Run(spec=spec, st=copy.deepcopy(status or {}), obs=Observations(), now=at)
    return run.sample_is_new(AnalysisSample(at=at))

"""Phase, message and conditions: what people, kstatus, Flux and Argo CD read.

The five situations a ModelDeployment can be in are tried in order; each gives a phase, a
message and the reasons, and the five conditions follow from them by one rule
(``_conditions``), so the conditions cannot disagree with the phase.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modeldeploy.operator.engine.context import Context
from modeldeploy.operator.model import (
    Analysis,
    Pause,
    Promote,
    ScaleDownPrevious,
    SetWeight,
    Step,
    WaitReady,
)


@dataclass(frozen=True)
class Situation:
    phase: str
    message: str
    ready: bool  # the spec's version serves
    progressing: bool  # the operator is still working towards it (kstatus: Reconciling)
    failed: bool  # it will not get there on its own (Degraded, kstatus: Stalled)
    reason: str  # of Ready and Degraded
    progress_reason: str  # of Progressing
    kstatus_reason: str  # of Reconciling and Stalled


def describe(step: Step | None) -> str:
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


def _rolling_out(ctx: Context) -> Situation | None:
    st, step = ctx.st, ctx.step
    if not st.active:
        return None
    waiting = isinstance(step, Pause) and step.seconds is None
    phase = "Paused" if st.paused or waiting else "Progressing"
    if st.paused:
        message = f"paused at step {st.current_step}" + (
            f": {st.pause_reason}" if st.pause_reason else ""
        )
    elif waiting:
        message = f"step {st.current_step}: waiting for promote"
    else:
        message = (
            f"step {st.current_step}/{len(ctx.plan) - 1}: {describe(step)}, "
            f"{st.canary_weight}% to {st.candidate_version}"
        )
        analysis = st.analysis
        if analysis is not None and analysis.outcome in ("Waiting", "Inconclusive"):
            message += f"; analysis {analysis.outcome.lower()}: {analysis.message}"
        elif isinstance(step, Analysis) and analysis is not None:
            message += f"; {analysis.predictions}/{ctx.spec.analysis.min_samples} predictions"
    progress = "RolloutPaused" if phase == "Paused" else "RolloutInProgress"
    return Situation(
        phase,
        message,
        ready=False,
        progressing=True,
        failed=False,
        reason="RolloutInProgress",
        progress_reason=progress,
        kstatus_reason=phase,
    )


def _rolled_back(ctx: Context) -> Situation | None:
    st = ctx.st
    if not st.aborted_revision or st.aborted_revision != ctx.spec.template.revision:
        return None
    last = st.history[0] if st.history else None
    why = last.reason if last else ""
    message = (
        f"{ctx.spec.template.model.version} rolled back ({why or None}: "
        f"{last.message if last else None}); serving {st.stable_version}"
    )
    return Situation(
        "Degraded",
        message,
        ready=False,
        progressing=False,
        failed=True,
        reason=why or "RolledBack",
        progress_reason="RolledBack",
        kstatus_reason="RolledBack",
    )


def _healthy(ctx: Context) -> Situation | None:
    if not ctx.stable_serves():
        return None
    ctx.st.stable_served = True
    message = f"{ctx.st.stable_version} serves in slot {ctx.st.stable_slot}"
    return Situation(
        "Healthy",
        message,
        ready=True,
        progressing=False,
        failed=False,
        reason="Healthy",
        progress_reason="RolloutComplete",
        kstatus_reason="Healthy",
    )


def _stable_never_ready(ctx: Context) -> Situation | None:
    st, spec = ctx.st, ctx.spec
    if ctx.since(st.rollout_started_at) <= spec.progress_deadline or st.phase == "Healthy":
        return None
    assert st.stable_slot is not None
    reason = ctx.obs.slot(st.stable_slot).reason or "not ready"
    message = (
        f"{st.stable_version} not ready in slot {st.stable_slot} after "
        f"{spec.progress_deadline:g}s: {reason}"
    )
    return Situation(
        "Degraded",
        message,
        ready=False,
        progressing=False,
        failed=True,
        reason="ProgressDeadlineExceeded",
        progress_reason="ProgressDeadlineExceeded",
        kstatus_reason="ProgressDeadlineExceeded",
    )


def _deploying(ctx: Context) -> Situation:
    st = ctx.st
    assert st.stable_slot is not None
    reason = ctx.obs.slot(st.stable_slot).reason
    message = f"waiting for {st.stable_version} in slot {st.stable_slot}" + (
        f": {reason}" if reason else ""
    )
    return Situation(
        "Progressing",
        message,
        ready=False,
        progressing=True,
        failed=False,
        reason="Deploying",
        progress_reason="Deploying",
        kstatus_reason="Deploying",
    )


_SITUATIONS: tuple[Callable[[Context], Situation | None], ...] = (
    _rolling_out,
    _rolled_back,
    _healthy,
    _stable_never_ready,
)


def _conditions(s: Situation) -> list[tuple[str, bool, str, str]]:
    """(type, status, reason, message) of the five conditions."""
    failed_message = s.message if s.failed else ""
    return [
        ("Ready", s.ready, s.reason, s.message),
        ("Progressing", s.progressing, s.progress_reason, s.message),
        ("Degraded", s.failed, s.reason, failed_message),
        ("Reconciling", s.progressing, s.kstatus_reason, s.message if s.progressing else ""),
        ("Stalled", s.failed, s.kstatus_reason, failed_message),
    ]


def summarise(ctx: Context) -> None:
    st = ctx.st
    situation = next(
        (s for s in (f(ctx) for f in _SITUATIONS) if s is not None), None
    ) or _deploying(ctx)
    if situation.phase != st.phase and st.phase:
        ctx.event(
            "Warning" if situation.phase == "Degraded" else "Normal",
            f"Phase{situation.phase}",
            f"phase {st.phase} -> {situation.phase}: {situation.message}",
        )
    st.phase, st.message = situation.phase, situation.message
    for type_, value, reason, message in _conditions(situation):
        st.set_condition(
            type_, "True" if value else "False", reason, message, ctx.stamp, ctx.spec.generation
        )

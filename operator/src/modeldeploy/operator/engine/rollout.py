"""The machinery every strategy shares: slots, starting and ending a rollout, the steps.

A step is *entered* (its side effects recorded in the status) and later *completed* by an
observation (pods ready, time passed, analysis passed) or a control. Entering writes
everything the desired state depends on, so the actions of a status never depend on how it
was reached.
"""

from __future__ import annotations

from datetime import timedelta

from modeldeploy.operator import defaults as d
from modeldeploy.operator.engine import judging
from modeldeploy.operator.engine.context import Context
from modeldeploy.operator.engine.status import AnalysisState, HistoryEntry, SlotRecord
from modeldeploy.operator.model import (
    Analysis,
    Pause,
    Promote,
    ScaleDownPrevious,
    SetWeight,
    Slot,
    Step,
    Template,
    WaitReady,
    other_slot,
)


def record_slot(ctx: Context, slot: Slot, template: Template, serve_role: str) -> None:
    ctx.st.slots[slot] = SlotRecord(
        template=template, revision=template.revision, serve_role=serve_role
    )


def push_history(ctx: Context, outcome: str, reason: str, message: str) -> None:
    st = ctx.st
    entry = HistoryEntry(
        version=st.candidate_version,
        revision=st.candidate_revision,
        outcome=outcome,
        reason=reason,
        message=message,
        started_at=st.rollout_started_at or ctx.stamp,
        finished_at=ctx.stamp,
    )
    st.history = [entry, *st.history][: d.HISTORY_LIMIT]


def clear_rollout(ctx: Context) -> None:
    st = ctx.st
    st.candidate_slot = st.previous_slot = None
    st.candidate_version = st.candidate_revision = ""
    st.step_started_at = st.scale_down_at = None
    st.promoted = False
    st.pause_reason = ""
    st.canary_weight = st.current_step = 0
    st.analysis = st.analysis or AnalysisState()
    st.analysis.consecutive_errors = 0


def first_deploy(ctx: Context) -> None:
    template, st = ctx.spec.template, ctx.st
    record_slot(ctx, "blue", template, d.ROLE_STABLE)
    st.stable_slot, st.stable_version = "blue", template.model.version
    st.stable_revision, st.rollout_started_at = template.revision, ctx.stamp
    st.canary_weight = st.current_step = 0
    ctx.event("Normal", "Deploying", f"deploying {template.model.version} into slot blue")


def follow_spec(ctx: Context, verb: str | None) -> None:
    """Start, supersede, cancel or retry a rollout when the spec's revision changed."""
    st, template = ctx.st, ctx.spec.template
    rev = template.revision
    if verb == "retry":
        if st.aborted_revision:
            ctx.event("Normal", "Retry", f"retrying {template.model.version}")
            st.aborted_revision = ""
        elif not st.active:
            ctx.event("Normal", "ControlIgnored", "retry: nothing was rolled back")
    if st.active:
        if rev == st.candidate_revision:
            return
        if st.promoted:
            finish(ctx)  # the candidate already serves as stable: keep it
        else:
            outcome = "Cancelled" if rev == st.stable_revision else "Superseded"
            push_history(ctx, outcome, outcome, f"spec changed to {template.model.version}")
            ctx.event(
                "Normal",
                outcome,
                f"rollout of {st.candidate_version} {outcome.lower()}: "
                f"spec changed to {template.model.version}",
            )
            clear_rollout(ctx)
    if rev == st.stable_revision:
        if st.aborted_revision:
            st.aborted_revision = ""
            ctx.event("Normal", "Reverted", f"spec is back at the stable {template.model.version}")
        return
    if rev == st.aborted_revision:
        return
    st.aborted_revision = ""
    assert st.stable_slot is not None
    if not st.stable_served and not ctx.obs.slot(st.stable_slot).ready_replicas:
        # Nothing serves and nothing ever did: there is nothing to protect.
        record_slot(ctx, st.stable_slot, template, d.ROLE_STABLE)
        st.stable_version, st.stable_revision = template.model.version, rev
        st.rollout_started_at = ctx.stamp
        ctx.event(
            "Normal",
            "Deploying",
            f"replacing the never-ready stable with {template.model.version} in place",
        )
        return
    start_rollout(ctx)


def start_rollout(ctx: Context) -> None:
    st, template = ctx.st, ctx.spec.template
    assert st.stable_slot is not None
    slot = other_slot(st.stable_slot)
    record_slot(ctx, slot, template, d.ROLE_CANDIDATE)
    st.candidate_slot, st.candidate_version = slot, template.model.version
    st.candidate_revision, st.rollout_started_at = template.revision, ctx.stamp
    st.canary_weight = st.current_step = 0
    st.analysis = AnalysisState()
    ctx.event(
        "Normal",
        "RolloutStarted",
        f"rolling out {template.model.version} into slot {slot} ({ctx.spec.strategy}); "
        f"stable {st.stable_version} in slot {st.stable_slot}",
    )
    enter(ctx, 0)


# --- steps ------------------------------------------------------------------------------


def enter(ctx: Context, index: int) -> None:
    """Record step ``index`` as current; its effect on the desired state is immediate."""
    st = ctx.st
    st.current_step, st.step_started_at = index, ctx.stamp
    st.analysis = st.analysis or AnalysisState()
    st.analysis.passed_samples = 0
    step = ctx.plan[index]
    # Evidence counts per step, from the counter's value at the step's start (the sample
    # in hand; without one, the next sample is the baseline).
    st.analysis.predictions, st.analysis.predictions_seen = 0, None
    st.analysis.predictions_of = ""
    if isinstance(step, Analysis) and ctx.obs.analysis is not None:
        version = st.candidate_version if step.role == d.ROLE_CANDIDATE else st.stable_version
        judging.count_predictions(st.analysis, ctx.obs.analysis, f"{step.role}/{version}")
    if isinstance(step, SetWeight):
        if step.weight != st.canary_weight:
            st.canary_weight = step.weight
            ctx.event(
                "Normal",
                "WeightSet",
                f"step {index}: {step.weight}% of traffic to {st.candidate_version}",
            )
    elif isinstance(step, Promote):
        promote(ctx)
    elif isinstance(step, ScaleDownPrevious):
        st.scale_down_at = ctx.stamp + timedelta(seconds=step.delay)
    elif isinstance(step, Pause):
        ctx.event(
            "Normal",
            "StepPaused",
            f"step {index}: pause "
            + ("until promoted" if step.seconds is None else f"{step.seconds:g}s"),
        )
    elif isinstance(step, Analysis):
        ctx.event(
            "Normal",
            "AnalysisStep",
            f"step {index}: analysing the {step.role} for {step.seconds:g}s",
        )


def complete(ctx: Context) -> None:
    """The current step is done: enter the next one (or finish)."""
    if not ctx.st.active:
        return
    if isinstance(ctx.plan[ctx.index], ScaleDownPrevious):
        finish(ctx)
    else:
        enter(ctx, ctx.index + 1)


def step_done(ctx: Context, step: Step) -> bool:
    st = ctx.st
    if isinstance(step, (SetWeight, WaitReady)):
        return ctx.candidate_serves()
    if isinstance(step, Pause):
        return step.seconds is not None and ctx.since(st.step_started_at) >= step.seconds
    if isinstance(step, Analysis):
        analysis = st.analysis or AnalysisState()
        return analysis_over(ctx, step) and analysis.predictions >= ctx.spec.analysis.min_samples
    if isinstance(step, Promote):
        return True
    return ctx.since(st.scale_down_at) >= 0  # ScaleDownPrevious


def analysis_over(ctx: Context, step: Analysis) -> bool:
    """The step's duration is over and its last sample passed (evidence aside)."""
    analysis = ctx.st.analysis or AnalysisState()
    return (
        ctx.since(ctx.st.step_started_at) >= step.seconds
        and analysis.outcome == "Passed"
        and analysis.passed_samples >= 1
    )


def insufficient_evidence(ctx: Context, step: Analysis) -> bool:
    """Too few predictions once the step is over: pause (the default) or roll back."""
    st, spec = ctx.st, ctx.spec
    analysis = st.analysis or AnalysisState()
    need = spec.analysis.min_samples
    if not analysis_over(ctx, step) or analysis.predictions >= need:
        return False
    version = st.candidate_version if step.role == d.ROLE_CANDIDATE else st.stable_version
    message = (
        f"insufficient evidence: {analysis.predictions} of {need} predictions "
        f"(analysis.minSamples) served by the {step.role} {version} in step "
        f"{st.current_step} ({step.seconds:g}s)"
    )
    if spec.analysis.on_insufficient_evidence == "rollback":
        rollback(ctx, "InsufficientEvidence", message)
        return True
    st.paused, st.pause_started_at, st.pause_reason = True, ctx.stamp, message
    ctx.event("Warning", "InsufficientEvidence", f"paused: {message}; resume or promote")
    return True


def promotion_allowed(ctx: Context) -> bool:
    """Never promote on an inconclusive (or missing) analysis."""
    return ctx.st.analysis is not None and ctx.st.analysis.outcome == "Passed"


def advance(ctx: Context) -> None:
    """Complete as many steps as the observations allow (each at most once)."""
    st, spec = ctx.st, ctx.spec
    for _ in range(len(ctx.plan) + 1):
        step = ctx.step
        if step is None or st.paused:
            return
        if (
            isinstance(step, (SetWeight, WaitReady))
            and not ctx.candidate_serves()
            and ctx.since(st.step_started_at) > spec.progress_deadline
        ):
            assert st.candidate_slot is not None
            reason = ctx.obs.slot(st.candidate_slot).reason or "not ready"
            rollback(
                ctx,
                "ProgressDeadlineExceeded",
                f"candidate not ready after {spec.progress_deadline:g}s: {reason}",
            )
            return
        if isinstance(step, Analysis) and insufficient_evidence(ctx, step):
            return
        if not step_done(ctx, step):
            return
        following = ctx.plan[ctx.index + 1] if ctx.index + 1 < len(ctx.plan) else None
        if isinstance(following, Promote) and not promotion_allowed(ctx):
            return
        complete(ctx)


# --- the end of a rollout ---------------------------------------------------------------


def promote(ctx: Context) -> None:
    st = ctx.st
    new, old = st.candidate_slot, st.stable_slot
    st.stable_served = True
    st.previous_slot, st.stable_slot = old, new
    st.stable_version, st.stable_revision = st.candidate_version, st.candidate_revision
    st.promoted, st.canary_weight = True, 0
    ctx.event(
        "Normal",
        "Promoted",
        f"{st.candidate_version} is stable (slot {new}); "
        f"previous slot {old} kept until the rollout ends",
    )


def finish(ctx: Context) -> None:
    st = ctx.st
    version = st.candidate_version
    push_history(ctx, "Promoted", "Promoted", f"{version} promoted")
    ctx.event(
        "Normal",
        "RolloutCompleted",
        f"{version} rolled out; previous slot {st.previous_slot} scaled down",
    )
    clear_rollout(ctx)


def rollback(ctx: Context, reason: str, message: str) -> None:
    """Back to the last stable: after a promotion the pointer moves back (the previous slot
    still runs at full size), so no request waits for pods."""
    st = ctx.st
    if st.promoted and st.previous_slot is not None:
        prev = st.previous_slot
        record = st.slots[prev]
        st.stable_slot, st.stable_version = prev, record.version
        st.stable_revision = record.revision
    st.aborted_revision = st.candidate_revision
    push_history(ctx, "RolledBack" if reason != "Aborted" else "Aborted", reason, message)
    ctx.event("Warning", "RolledBack", f"rolled back {st.candidate_version}: {reason}: {message}")
    clear_rollout(ctx)
    st.paused, st.pause_started_at, st.pause_reason = False, None, ""

"""One decision: the order of the engine's passes, and the desired state of a status.

The actions are a function of the new status, the spec and the observed pods (which hold
back the router's split until Ready pods can take it: ``capacity``), all level state: that
is what makes a lost status write or a lost apply harmless, since the next reconcile
reaches the same status and asks for the same children.
"""

from __future__ import annotations

from datetime import datetime

from modeldeploy.operator import defaults as d
from modeldeploy.operator.engine import controls, judging, rollout, summary
from modeldeploy.operator.engine.capacity import (
    candidate_ready,
    candidate_share,
    hold_capacity,
    ready_weight,
)
from modeldeploy.operator.engine.context import Context
from modeldeploy.operator.engine.status import RolloutStatus
from modeldeploy.operator.engine.strategy import strategy_of
from modeldeploy.operator.model import (
    Actions,
    Analysis,
    Observations,
    Slot,
    SlotDeployment,
    Spec,
)
from modeldeploy.operator.routers import replica_split, router_for


def _context(spec: Spec, status: RolloutStatus, obs: Observations, now: datetime) -> Context:
    strategy = strategy_of(spec)
    return Context(
        spec=spec, st=status.copy(), obs=obs, now=now, strategy=strategy, plan=strategy.plan(spec)
    )


def _role(ctx: Context) -> str:
    step = ctx.step
    if isinstance(step, Analysis):
        return step.role
    return d.ROLE_STABLE if ctx.st.promoted else d.ROLE_CANDIDATE


def _run(ctx: Context) -> None:
    st, spec = ctx.st, ctx.spec
    st.strategy, st.observed_generation = spec.strategy, spec.generation
    verb = controls.take_control(ctx)
    if st.stable_slot is None:
        rollout.first_deploy(ctx)
    rollout.follow_spec(ctx, verb)
    controls.apply_control(ctx, verb)
    if st.active:
        failed = judging.record_sample(ctx, _role(ctx))
        if failed is not None:
            rollout.rollback(ctx, *failed)
    if st.active:
        rollout.advance(ctx)
    judging.watch_stable_drift(ctx)
    summary.summarise(ctx)
    st.traffic_share = _share(ctx)


def _share(ctx: Context) -> int:
    """What the router can really give the candidate at the current weight."""
    st = ctx.st
    if not st.active or st.promoted:
        return 0
    weight, mirror = ctx.strategy.traffic(st.canary_weight)
    if mirror:
        return 0  # a shadow gets copies, never a client's request
    stable_n, candidate_n = replica_split(ctx.spec, st.canary_weight, True)
    return candidate_share(stable_n, candidate_n, weight, router_for(ctx.spec).exact_split)


def _actions(ctx: Context) -> Actions:
    st, spec = ctx.st, ctx.spec
    stable = st.stable_slot
    assert stable is not None
    stable_n, candidate_n = replica_split(spec, st.canary_weight, st.active)
    replicas: dict[Slot, int] = dict.fromkeys(st.slots, 0)
    roles: dict[str, str] = {}
    if st.promoted:
        assert st.previous_slot is not None
        replicas[stable] = replicas[st.previous_slot] = spec.replicas
        roles[st.previous_slot] = d.ROLE_PREVIOUS
    else:
        replicas[stable] = stable_n
        if st.candidate_slot is not None and st.active:
            replicas[st.candidate_slot] = candidate_n
            roles[st.candidate_slot] = d.ROLE_CANDIDATE
    roles[stable] = d.ROLE_STABLE
    replicas = hold_capacity(ctx, replicas)
    deployments = tuple(
        SlotDeployment(
            slot=slot,
            template=record.template,
            serve_role=record.serve_role,
            replicas=replicas[slot],
            revision=record.revision,
        )
        for slot, record in sorted(st.slots.items())
    )
    candidate = None if st.promoted or not st.active else st.candidate_slot
    weight, mirror = ctx.strategy.traffic(st.canary_weight)
    if candidate is not None and not mirror:
        weight = ready_weight(ctx, weight, candidate_n)
    return Actions(
        deployments=deployments,
        pod_roles=roles,
        stable_slot=stable,
        candidate_slot=candidate,
        candidate_ready=candidate is not None and candidate_ready(ctx),
        weight=weight if candidate else 0,
        mirror=candidate is not None and mirror,
        events=tuple(ctx.events),
    )


def reconcile(
    spec: Spec, status: RolloutStatus, observations: Observations, now: datetime
) -> tuple[RolloutStatus, Actions]:
    """The new status and the desired state; pure (the input status is not modified)."""
    ctx = _context(spec, status, observations, now)
    _run(ctx)
    return ctx.st, _actions(ctx)


def analysis_role(spec: Spec, status: RolloutStatus) -> str | None:
    """Whose alerts and checks the next sample should evaluate, or None (no rollout)."""
    if not status.active:
        return None
    return _role(_context(spec, status, Observations(), datetime.min))


def sample_due(spec: Spec, status: RolloutStatus, at: datetime) -> bool:
    """Whether a sample taken at ``at`` would be consumed (so checks are worth running)."""
    return judging.sample_is_new(spec, status, at)


def next_sample_at(spec: Spec, status: RolloutStatus) -> datetime | None:
    """From when a snapshot would be this rollout's next sample; None when no rollout is
    being sampled. The handlers reconcile at the first snapshot after it, so a tick is
    judged when its evidence arrives rather than at the next resync."""
    last = status.analysis.last_sample_at if status.analysis else None
    if not status.active or last is None:
        return None
    return judging.next_sample_at(spec, last)

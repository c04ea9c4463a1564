"""Make before break: no slot gives up pods before the others have Ready pods to take its
share of the traffic.

The router's split says how many pods each slot runs at a weight, which is what the slots
converge to. Applied as is, entering a step scales the stable down at the moment the
candidate is asked to scale up, and a rollback scales the candidate to 0 at the moment the
stable is asked to scale back up: with the ``replicas`` provider (the weight is the share of
pods behind one Service) a first step of ``setWeight: 100`` would leave no Ready pod while
the candidate starts, or for ever if it never becomes Ready, and a rollback from 100% none
until the stable's pods have started again.

So the split is a target, and this pass holds pods back from it while the others cannot
serve yet (what Argo Rollouts' traffic-routed canary does by keeping the stable whole, and
its basic canary by surging first):

- the stable keeps ``replicas - ready candidate pods`` (the candidate's Ready pods of its
  own revision, counted only while the candidate takes client traffic: a canary). It may
  even grow back to that if candidate pods stop being Ready mid-rollout;
- a candidate whose weight goes down keeps the pods it has, up to ``replicas - ready
  stable pods``, until the stable has Ready pods to take its share back;
- a version on its way out (a rolled-back or aborted candidate, the previous stable at the
  end of a rollout) keeps its pods only while the stable has no Ready pod at all: after a
  rollback from 100% it answers until the stable's first pods are Ready, so no request
  finds the Service empty. Otherwise it goes at once and the stable's Ready pods carry all
  of the traffic while the rest start: a version that was rejected (wrong answers, errors)
  answers for as short a time as possible, at the cost of a few seconds at a higher load
  per stable pod. Neither ever grows: a candidate is not scaled up to cover.

A route (the routed providers) moves requests, not pods, and the stable stays whole there;
what it must not do is send a share to candidate pods that are not Ready yet (the gateway
would answer 503 for them). ``ready_weight`` gives the candidate its step's weight only
when its pods for that weight are Ready, and a proportional part of it before.

The extra pods never change which slot the engine considers serving (``serves`` asks for
"at least" the split's count), and the hold ends by itself once the pods it waits for are
Ready: it is level-based, a function of the status and what the apiserver says.
"""

from __future__ import annotations

from collections.abc import Mapping

from modeldeploy.operator.engine.context import Context
from modeldeploy.operator.model import Slot


def _ready(ctx: Context, slot: Slot, revision: str) -> int:
    """Ready pods of ``slot`` running ``revision`` (a slot being replaced counts none)."""
    obs = ctx.obs.slot(slot)
    if not obs.exists or obs.revision != revision or not obs.up_to_date:
        return 0
    return obs.ready_replicas


def _candidate_takes_traffic(ctx: Context) -> bool:
    st = ctx.st
    return st.active and not st.promoted and ctx.spec.strategy == "canary"


def hold_capacity(ctx: Context, split: Mapping[Slot, int]) -> dict[Slot, int]:
    """The replicas each slot runs now: ``split`` where that keeps Ready capacity for all of
    the traffic, more where it would not."""
    st, total = ctx.st, ctx.spec.replicas
    stable = st.stable_slot
    out = dict(split)
    if stable is None:
        return out
    candidate_ready = 0
    if _candidate_takes_traffic(ctx) and st.candidate_slot is not None:
        candidate_ready = _ready(ctx, st.candidate_slot, st.candidate_revision)
    stable_ready = _ready(ctx, stable, st.stable_revision)
    for slot, want in split.items():
        running = ctx.obs.slot(slot).replicas
        if slot == stable:
            out[slot] = max(want, min(total, total - candidate_ready))
        elif slot == st.candidate_slot and st.active:
            out[slot] = max(want, min(running, total - stable_ready))
        elif stable_ready == 0:
            out[slot] = max(want, min(running, total))
    return out


def candidate_ready(ctx: Context) -> bool:
    """Whether the candidate has a Ready pod of its revision: until then a blue/green's
    preview Service keeps selecting the stable, so it never points at no Ready pod."""
    st = ctx.st
    return (
        st.candidate_slot is not None and _ready(ctx, st.candidate_slot, st.candidate_revision) > 0
    )


def ready_weight(ctx: Context, weight: int, pods_for_weight: int) -> int:
    """The part of ``weight`` the candidate's Ready pods can take: all of it once the
    ``pods_for_weight`` the split gives it are Ready, ``weight * ready / pods`` before."""
    st = ctx.st
    if weight <= 0 or st.candidate_slot is None or pods_for_weight <= 0:
        return 0
    ready = _ready(ctx, st.candidate_slot, st.candidate_revision)
    if ready >= pods_for_weight:
        return weight
    return weight * ready // pods_for_weight


def candidate_share(stable: int, candidate: int, weight: int, exact: bool) -> int:
    """The percent of requests the candidate can really get at ``weight``: the route's
    weight when the router splits requests exactly, else its share of the pods the split
    sets (with ``replicas``, 2 pods cannot give 25%: 1 of 3 is 33%)."""
    if exact or candidate == 0:
        return weight if candidate else 0
    return round(100 * candidate / (stable + candidate))

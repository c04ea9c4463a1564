"""Manual controls: the ``modeldeploy.io/control`` annotation, for people and the plugin.

A control is applied once per annotation value (``lastControl`` remembers it), so the
annotation can stay in place and a restart does not apply it again; a suffix ("promote/2")
makes the same verb a new value.

``retrain`` (start a retraining run now, within its limits) and ``promote`` while a
retrained version awaits approval are the retraining loop's (``retraining``): the engine
leaves them alone.
"""

from __future__ import annotations

import re

from modeldeploy.operator import defaults as d
from modeldeploy.operator.engine import rollout
from modeldeploy.operator.engine.context import Context
from modeldeploy.operator.model import Pause, Promote

_CONTROL = re.compile(r"^\s*(pause|resume|promote-full|promote|abort|retry|retrain)(?![-a-z])")


def parse_control(value: str) -> str | None:
    """The verb of a control annotation ("promote", "promote/2" -> "promote")."""
    match = _CONTROL.match(value)
    return match.group(1) if match else None


def take_control(ctx: Context) -> str | None:
    """The verb of a new annotation value, or None."""
    value = ctx.obs.control
    if not value or value == ctx.st.last_control:
        return None
    ctx.st.last_control = value
    verb = parse_control(value)
    if verb is None:
        ctx.event(
            "Warning",
            "UnknownControl",
            f"{d.ANNOTATION_CONTROL}={value!r}: expected one of " + ", ".join(d.CONTROLS),
        )
    return verb


def apply_control(ctx: Context, verb: str | None) -> None:
    st = ctx.st
    if verb == "retrain" or (verb == "promote" and ctx.obs.retrain_awaiting and not st.active):
        return
    if not st.active:
        if verb in ("pause", "resume"):
            _pause_or_resume(ctx, verb)
        elif verb in ("promote", "promote-full", "abort"):
            ctx.event("Normal", "ControlIgnored", f"{verb}: no rollout in progress")
        return
    if verb in ("pause", "resume"):
        _pause_or_resume(ctx, verb)
    elif verb == "promote":
        ctx.event("Normal", "Promote", f"step {st.current_step} skipped by promote control")
        st.paused, st.pause_reason = False, ""
        rollout.complete(ctx)
    elif verb == "promote-full":
        st.paused, st.pause_reason = False, ""
        target = next(i for i, s in enumerate(ctx.plan) if isinstance(s, Promote))
        if st.current_step < target:
            ctx.event("Normal", "PromoteFull", "promoting at once by control")
            rollout.enter(ctx, target)
    elif verb == "abort":
        rollout.rollback(ctx, "Aborted", "aborted by control")


def _pause_or_resume(ctx: Context, verb: str) -> None:
    st = ctx.st
    if verb == "pause":
        if not st.paused:
            st.paused, st.pause_started_at = True, ctx.stamp
            ctx.event("Normal", "Paused", "paused by control")
        return
    was_paused = st.paused
    st.paused, st.pause_started_at, st.pause_reason = False, None, ""
    step = ctx.step
    if isinstance(step, Pause) and step.seconds is None:
        ctx.event("Normal", "Resumed", "resumed: indefinite pause ended")
        rollout.complete(ctx)
    elif was_paused:
        ctx.event("Normal", "Resumed", "resumed by control")

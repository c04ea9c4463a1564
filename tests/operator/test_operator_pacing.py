"""When each ModelDeployment's loop reconciles: a changed input, the engine's recheck time,
the minute's resync; and the recheck time the engine reports for its time tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opworld import T0, World, healthy, passing, run_until, spec, tick

from modeldeploy.operator import defaults as d
from modeldeploy.operator.analysis import Snapshot
from modeldeploy.operator.pacing import FULL_RESYNC_SECONDS, Pace, inputs_of


def md(uri: str = "https://models.example/churn.tar.gz", generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ml", "name": "churn", "generation": generation},
        "spec": {"model": {"bundleURI": uri}},
    }


def pods(ready: bool) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    return {("ml", "churn", d.SLOTS[0]): [{"name": "p", "ready": ready, "reason": ""}]}


def test_nothing_changed_means_no_reconcile_until_the_minute() -> None:
    now = [0.0]
    pace = Pace()
    seen = inputs_of(md(), {}, pods(True), {}, Snapshot(at=T0))
    assert pace.why(seen, T0, clock=lambda: now[0]) == "changed", "never reconciled"
    pace.reconciled(seen, None, clock=lambda: now[0])
    now[0] = FULL_RESYNC_SECONDS - 1
    again = inputs_of(md(), {}, pods(True), {}, Snapshot(at=T0 + timedelta(seconds=10)))
    assert pace.why(again, T0, clock=lambda: now[0]) is None, "a new poll alone is no change"
    now[0] = FULL_RESYNC_SECONDS
    assert pace.why(again, T0, clock=lambda: now[0]) == "resync"


def test_every_input_a_reconcile_acts_on_is_a_change() -> None:
    base = inputs_of(md(), {}, pods(True), {("Service", "churn"): "1"}, Snapshot(at=T0))
    pace = Pace()
    pace.reconciled(base, None)
    changes = {
        "a pod's readiness": inputs_of(md(), {}, pods(False), {("Service", "churn"): "1"}, None),
        "the spec": inputs_of(md(generation=2), {}, pods(True), {("Service", "churn"): "1"}, None),
        "a child edited or deleted": inputs_of(md(), {}, pods(True), {}, Snapshot(at=T0)),
        "Prometheus failing": inputs_of(
            md(), {}, pods(True), {("Service", "churn"): "1"}, Snapshot(at=T0, error="down")
        ),
        "an alert firing": inputs_of(
            md(),
            {},
            pods(True),
            {("Service", "churn"): "1"},
            Snapshot(at=T0, firing={("ml", "churn"): {("stable", "v1"): [("ModelX", 1.0)]}}),
        ),
    }
    for what, seen in changes.items():
        assert pace.why(seen, T0) == "changed", what


def test_a_registry_alias_is_looked_at_on_every_tick() -> None:
    """It can move in the registry, which no watch reports."""
    assert inputs_of(md(uri="models:/churn@champion"), {}, {}, {}, None) is None
    pace = Pace()
    pace.reconciled(None, None)
    assert pace.why(None, T0) == "changed"


def test_a_pause_reports_when_it_ends_and_the_loop_wakes_for_it() -> None:
    world, status = healthy()
    sp = spec(version="v2", sha="b" * 64)
    status = run_until(world, sp, status, lambda s: s.current_step == 1)  # the 30 s pause
    started = status.step_started_at
    assert started is not None
    world.now = started + timedelta(seconds=12)
    _, actions = tick(world, sp, status, sample=passing(world.now), dt=0)
    assert actions.recheck_at == started + timedelta(seconds=30)
    pace = Pace()
    pace.reconciled(("same",), actions.recheck_at)
    assert pace.wait_seconds(5.0, world.now) == 5.0, "a tick, since the pause ends later"
    assert 0 < pace.wait_seconds(5.0, started + timedelta(seconds=28)) <= 2.01
    assert pace.why(("same",), started + timedelta(seconds=29)) is None
    assert pace.why(("same",), started + timedelta(seconds=30)) == "timed"


def test_a_deadline_still_running_reports_when_it_passes() -> None:
    """A candidate that never gets ready: the progress deadline is the recheck time."""
    world, status = healthy()
    world.broken.add(spec(version="v2", sha="b" * 64).template.revision)
    sp = spec(version="v2", sha="b" * 64)
    status, actions = tick(world, sp, status, sample=passing(world.now))
    status, actions = tick(world, sp, status, sample=passing(world.now))
    assert status.active and actions.recheck_at is not None
    started = status.step_started_at or status.rollout_started_at
    assert started is not None
    assert actions.recheck_at <= started + timedelta(seconds=sp.progress_deadline, milliseconds=1)
    assert actions.recheck_at > world.now


def test_a_settled_deployment_has_no_recheck() -> None:
    world, status = healthy()
    _, actions = tick(World(now=world.now, slots=world.slots), spec(), status, sample=None)
    assert actions.recheck_at is None

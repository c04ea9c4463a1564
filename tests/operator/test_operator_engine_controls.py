"""The engine's manual controls: pause, resume, promote, promote-full, abort, retry."""

from __future__ import annotations

from opworld import SHA_B, healthy, passing, run_until, spec, tick


def test_retry_restarts_the_rolled_back_revision() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    status, _ = tick(world, v2, status, control="abort")
    assert status.phase == "Degraded" and status.history[0].outcome == "Aborted"
    status, actions = tick(world, v2, status, control="retry")
    assert status.candidate_revision == v2.template.revision
    assert status.phase == "Progressing" and status.canary_weight == 25
    assert "Retry" in [e.reason for e in actions.events]
    # the same annotation value is not applied twice
    status, actions = tick(world, v2, status, control="retry")
    assert "Retry" not in [e.reason for e in actions.events]


def test_pause_and_resume_controls() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    status, actions = tick(world, v2, status, control="pause", sample=passing(world.now))
    assert status.phase == "Paused" and status.paused is True
    step = status.current_step
    for _ in range(20):
        status, _ = tick(world, v2, status, control="pause", sample=passing(world.now))
    assert status.current_step == step and status.phase == "Paused"
    status, _ = tick(world, v2, status, control="resume", sample=passing(world.now))
    assert status.phase == "Progressing" and "paused" not in status.to_json()
    status = run_until(world, v2, status, lambda s: s.current_step > step, control="resume")


def test_indefinite_pause_waits_for_promote() -> None:
    world, status = healthy()
    steps = {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 60}]}}
    v2 = spec(version="v2", sha=SHA_B, strategy=steps)
    status = run_until(world, v2, status, lambda s: s.current_step == 1)
    for _ in range(30):
        status, _ = tick(world, v2, status, sample=passing(world.now), dt=60)
    assert status.current_step == 1 and status.phase == "Paused"
    assert "waiting for promote" in status.message
    status, _ = tick(world, v2, status, control="promote", sample=passing(world.now))
    assert status.current_step == 2 and status.canary_weight == 60


def test_promote_skips_one_step_and_promote_full_skips_all() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    status, _ = tick(world, v2, status, control="promote/1", sample=passing(world.now))
    assert status.current_step == 1
    status, _ = tick(world, v2, status, control="promote/2", sample=passing(world.now))
    assert status.current_step == 2 and status.canary_weight == 50
    status, actions = tick(world, v2, status, control="promote-full")
    assert status.stable_slot == "green" and status.stable_version == "v2"
    assert "PromoteFull" in [e.reason for e in actions.events]
    status = run_until(world, v2, status, lambda s: s.phase == "Healthy")
    assert status.stable_version == "v2" and status.history[0].outcome == "Promoted"


def test_controls_without_rollout_are_ignored_with_an_event() -> None:
    world, status = healthy()
    status, actions = tick(world, spec(), status, control="promote")
    assert [e.reason for e in actions.events] == ["ControlIgnored"]
    status, actions = tick(world, spec(), status, control="bogus")
    assert [e.reason for e in actions.events] == ["UnknownControl"]
    assert status.last_control == "bogus"


def test_retrain_and_an_approving_promote_are_left_to_the_retraining_loop() -> None:
    from modeldeploy.operator import engine
    from modeldeploy.operator.model import Observations

    world, status = healthy()
    sp = spec()
    for control, awaiting, quiet in (
        ("retrain/1", False, True),
        ("promote/1", True, True),
        ("promote/2", False, False),  # no rollout and nothing awaiting: said so
    ):
        obs = Observations(slots=world.observe(), control=control, retrain_awaiting=awaiting)
        new, actions = engine.reconcile(sp, status, obs, world.now)
        reasons = [e.reason for e in actions.events]
        assert "UnknownControl" not in reasons and new.last_control == control
        assert ("ControlIgnored" not in reasons) is quiet
        assert new.phase == "Healthy"
        status = new

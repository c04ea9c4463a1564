"""Unit tests of the pure rollout engine: deploying, rolling out, rolling back, history."""

from __future__ import annotations

import pytest
from opworld import SHA_B, SHA_C, World, body, healthy, passing, run_until, spec, tick

from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import Spec


def cond(status: RolloutStatus, type_: str) -> str:
    c = status.condition(type_)
    assert c is not None, type_
    return c.status


def test_first_deploy_goes_to_blue_and_becomes_healthy() -> None:
    world = World()
    sp = spec()
    status, actions = tick(world, sp, RolloutStatus())
    assert status.stable_slot == "blue" and status.stable_version == "v1"
    assert status.phase == "Progressing"
    assert cond(status, "Reconciling") == "True" and cond(status, "Ready") == "False"
    assert [(a.slot, a.replicas, a.serve_role) for a in actions.deployments] == [
        ("blue", 4, "stable")
    ]
    assert actions.pod_roles == {"blue": "stable"}
    assert [e.reason for e in actions.events] == ["Deploying"]
    status, actions = tick(world, sp, status)
    assert status.phase == "Healthy"
    assert cond(status, "Ready") == "True" and cond(status, "Reconciling") == "False"
    assert cond(status, "Stalled") == "False" and cond(status, "Degraded") == "False"
    assert status.observed_generation == 1 and status.strategy == "canary"
    assert "PhaseHealthy" in [e.reason for e in actions.events]


def test_stable_never_ready_is_degraded_after_the_deadline_then_replaced_in_place() -> None:
    world = World()
    sp = spec()
    world.broken.add(sp.template.revision)
    status, _ = tick(world, sp, RolloutStatus())
    status, _ = tick(world, sp, status, dt=700)
    status, actions = tick(world, sp, status)
    assert status.phase == "Degraded"
    assert cond(status, "Stalled") == "True"
    assert "sha256 mismatch" in status.message
    fixed = spec(sha=SHA_B)
    status, actions = tick(world, fixed, status)
    assert status.stable_slot == "blue" and "candidateSlot" not in status.to_json()
    assert [a.revision for a in actions.deployments] == [fixed.template.revision]
    status, _ = tick(world, fixed, status)
    assert status.phase == "Healthy"


def test_canary_steps_through_weights_and_promotes() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B, generation=2)
    status, actions = tick(world, v2, status, sample=passing(world.now))
    assert status.candidate_slot == "green" and status.candidate_version == "v2"
    assert status.current_step == 0 and status.canary_weight == 25
    assert status.phase == "Progressing"
    # replicas provider: the weight is the share of pods (4 replicas: 1 candidate, 3 stable),
    # but the stable keeps its 4 until the candidate's pod is Ready (make before break)
    reps = {a.slot: a.replicas for a in actions.deployments}
    assert reps == {"blue": 4, "green": 1}
    assert actions.weight == 0 and actions.candidate_slot == "green"  # no Ready pod yet
    assert actions.pod_roles == {"blue": "stable", "green": "candidate"}
    green = next(a for a in actions.deployments if a.slot == "green")
    assert green.serve_role == "candidate"
    # candidate ready -> pause 30s; now the stable gives up its pod
    status, actions = tick(world, v2, status, sample=passing(world.now))
    assert status.current_step == 1
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": 3, "green": 1}
    assert actions.weight == 25
    status = run_until(world, v2, status, lambda s: s.current_step == 2)
    assert status.canary_weight == 50
    status = run_until(world, v2, status, lambda s: s.current_step == 4)
    assert status.canary_weight == 75
    status = run_until(world, v2, status, lambda s: not s.candidate_revision)
    assert status.phase == "Healthy" and status.stable_slot == "green"
    assert status.stable_version == "v2"
    assert status.history[0].outcome == "Promoted"
    # Each weight once its pods are Ready; at 100 the candidate is promoted as soon as all
    # of its pods are, so the route goes from 75 to the new stable whole.
    assert world.applied_weights == [0, 25, 50, 75, 0]
    reasons = [e.reason for e in world.events]
    assert reasons.count("WeightSet") == 4 and "Promoted" in reasons
    assert "RolloutCompleted" in reasons
    _, actions = tick(world, v2, status)
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": 0, "green": 4}


def test_promotion_flips_roles_without_touching_templates() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, before = tick(world, v2, status, sample=passing(world.now))
    status = run_until(world, v2, status, lambda s: s.stable_slot == "green")
    _, after = tick(world, v2, status, sample=passing(world.now))
    tmpl = {a.slot: (a.template, a.serve_role) for a in before.deployments}
    assert {a.slot: (a.template, a.serve_role) for a in after.deployments} == tmpl
    assert after.pod_roles["green"] == "stable"


def test_firing_alert_rolls_back_at_once_with_rule_and_value() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    bad = AnalysisSample(
        at=world.now,
        scraped=frozenset({"stable", "candidate"}),
        firing={"candidate": (("ModelFeatureDrift", 0.42),)},
    )
    status, actions = tick(world, v2, status, sample=bad)
    assert status.phase == "Degraded"
    assert status.aborted_revision == v2.template.revision
    assert "candidateRevision" not in status.to_json() and status.canary_weight == 0
    assert status.stable_version == "v1" and status.stable_slot == "blue"
    h = status.history[0]
    assert h.outcome == "RolledBack" and h.reason == "AnalysisFailed"
    assert "ModelFeatureDrift" in h.message and "0.42" in h.message
    assert status.analysis.results[0].name == "ModelFeatureDrift"
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": 4, "green": 0}
    assert actions.weight == 0 and actions.candidate_slot is None
    ev = [e for e in actions.events if e.reason == "RolledBack"]
    assert ev and ev[0].type == "Warning" and "0.42" in ev[0].message
    assert cond(status, "Stalled") == "True" and cond(status, "Ready") == "False"
    # stays rolled back: the same spec is not retried
    status, actions = tick(world, v2, status, sample=passing(world.now))
    assert status.phase == "Degraded" and "candidateRevision" not in status.to_json()


def test_a_drift_rollback_names_the_feature_that_drifted() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    drift = 'ModelFeatureDrift{feature="plan"}'  # as the poller names a per-feature alert
    status, actions = tick(
        world, v2, status, sample=passing(world.now, firing={"candidate": ((drift, 2.5),)})
    )
    h = status.history[0]
    assert h.outcome == "RolledBack" and f"alert {drift} firing" in h.message, h.message
    assert status.analysis.results[0].name == drift
    assert any(drift in e.message for e in actions.events if e.reason == "RolledBack")


def test_alert_for_the_stable_or_not_watched_does_not_roll_back() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    noise = passing(
        world.now,
        firing={"stable": (("ModelFeatureDrift", 1.0),), "candidate": (("SomethingElse", 3.0),)},
    )
    status, _ = tick(world, v2, status, sample=noise)
    assert status.phase == "Progressing" and status.analysis.outcome == "Passed"


def test_reverting_the_spec_to_stable_clears_degraded() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    status, _ = tick(world, v2, status, control="abort")
    status, _ = tick(world, spec(), status)
    assert status.phase == "Healthy" and "abortedRevision" not in status.to_json()


def test_new_version_mid_rollout_supersedes_it() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    v3 = spec(version="v3", sha=SHA_C)
    status, actions = tick(world, v3, status, sample=passing(world.now))
    assert status.candidate_version == "v3" and status.candidate_slot == "green"
    assert status.history[0].outcome == "Superseded"
    assert status.current_step == 0 and status.canary_weight == 25


def test_going_back_to_stable_mid_rollout_cancels_it() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    status, actions = tick(world, spec(), status)
    assert "candidateRevision" not in status.to_json() and status.history[0].outcome == "Cancelled"
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": 4, "green": 0}


def test_candidate_not_ready_rolls_back_after_the_progress_deadline() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    world.broken.add(v2.template.revision)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    status, _ = tick(world, v2, status, sample=passing(world.now), dt=601)
    status, actions = tick(world, v2, status, sample=passing(world.now))
    assert status.phase == "Degraded"
    assert status.history[0].reason == "ProgressDeadlineExceeded"
    assert "sha256 mismatch" in status.history[0].message


def test_spec_without_image_uses_the_operator_default() -> None:
    raw = body()
    del raw["spec"]["server"]
    assert Spec.from_body(raw, default_image="img:1").template.image == "img:1"
    with pytest.raises(ValueError, match="server-image"):
        Spec.from_body(raw)


def test_condition_transition_time_moves_only_on_change() -> None:
    world = World()
    sp = spec()
    status, _ = tick(world, sp, RolloutStatus())
    t1 = status.condition("Ready").last_transition_time
    status, _ = tick(world, sp, status)
    ready = status.condition("Ready")
    assert ready.status == "True" and ready.last_transition_time != t1
    status2, _ = tick(world, sp, status)
    assert status2.condition("Ready").last_transition_time == ready.last_transition_time


def test_history_is_bounded() -> None:
    world, status = healthy()
    for i in range(15):
        v = spec(version=f"v{i + 2}", sha=f"{i:064x}")
        status, _ = tick(world, v, status, sample=passing(world.now))
        status, _ = tick(world, v, status, control=f"abort/{i}")
    assert len(status.history) == 10
    assert status.history[0].version == "v16"


def test_fewer_steps_mid_rollout_resume_at_the_last_one() -> None:
    # Editing the steps is not a new revision: the rollout goes on, clamped to the new plan.
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status = run_until(world, v2, status, lambda s: s.current_step == 4)
    short = spec(version="v2", sha=SHA_B, strategy={"canary": {"steps": [{"setWeight": 10}]}})
    assert short.template.revision == v2.template.revision
    status = run_until(world, short, status, lambda s: s.phase == "Healthy")
    assert status.stable_version == "v2" and status.history[0].outcome == "Promoted"

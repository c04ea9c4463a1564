"""Unit tests of the pure rollout engine: every transition."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeldeploy.operator import engine
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.model import AnalysisSample, CheckResult, Spec
from modeldeploy.operator.routers import replica_split

from opworld import SHA_A, SHA_B, SHA_C, T0, World, body, healthy, passing, run_until, spec, tick


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
    assert [(a.slot, a.replicas, a.serve_role) for a in actions.deployments] == \
        [("blue", 4, "stable")]
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
    # replicas provider: the weight is the share of pods (4 replicas: 1 candidate, 3 stable)
    reps = {a.slot: a.replicas for a in actions.deployments}
    assert reps == {"blue": 3, "green": 1}
    assert actions.weight == 25 and actions.candidate_slot == "green"
    assert actions.pod_roles == {"blue": "stable", "green": "candidate"}
    green = next(a for a in actions.deployments if a.slot == "green")
    assert green.serve_role == "candidate"
    # candidate ready -> pause 30s
    status, _ = tick(world, v2, status, sample=passing(world.now))
    assert status.current_step == 1
    status = run_until(world, v2, status, lambda s: s.current_step == 2)
    assert status.canary_weight == 50
    status = run_until(world, v2, status, lambda s: s.current_step == 4)
    assert status.canary_weight == 75
    status = run_until(world, v2, status, lambda s: not s.candidate_revision)
    assert status.phase == "Healthy" and status.stable_slot == "green"
    assert status.stable_version == "v2"
    assert status.history[0].outcome == "Promoted"
    assert world.applied_weights == [0, 25, 50, 75, 100, 0]
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
    bad = AnalysisSample(at=world.now, scraped=frozenset({"stable", "candidate"}),
                         firing={"candidate": (("ModelFeatureDrift", 0.42),)})
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


def test_alert_for_the_stable_or_not_watched_does_not_roll_back() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    noise = AnalysisSample(at=world.now, scraped=frozenset({"stable", "candidate"}),
                           firing={"stable": (("ModelFeatureDrift", 1.0),),
                                   "candidate": (("SomethingElse", 3.0),)})
    status, _ = tick(world, v2, status, sample=noise)
    assert status.phase == "Progressing" and status.analysis.outcome == "Passed"


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
    status = run_until(world, v2, status, lambda s: s.current_step > step,
                       control="resume")


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


def test_inconclusive_never_promotes_and_rolls_back_after_the_limit() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B, analysis={"interval": "10s", "consecutiveErrorLimit": 3})
    status, _ = tick(world, v2, status, sample=passing(world.now))
    down = AnalysisSample(at=world.now, error="connection refused")
    for i in range(2):
        status, actions = tick(world, v2, status,
                               sample=AnalysisSample(at=world.now, error="connection refused"))
        assert status.analysis.consecutive_errors == i + 1
        assert "AnalysisInconclusive" in [e.reason for e in actions.events]
    assert status.phase == "Progressing"
    status, _ = tick(world, v2, status, sample=AnalysisSample(at=world.now, error="refused"))
    assert status.phase == "Degraded"
    assert status.history[0].reason == "AnalysisInconclusive"
    assert down.error in status.analysis.message or "refused" in status.message


def test_inconclusive_with_on_error_limit_pause() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B, analysis={"interval": "10s", "consecutiveErrorLimit": 2,
                                                 "onErrorLimit": "pause"})
    status, _ = tick(world, v2, status, sample=passing(world.now))
    for _ in range(2):
        status, _ = tick(world, v2, status, sample=AnalysisSample(at=world.now, error="x"))
    assert status.phase == "Paused" and status.paused


def test_no_metrics_from_the_candidate_is_inconclusive() -> None:
    sample = AnalysisSample(at=T0, scraped=frozenset({"stable"}))
    outcome, message, _ = engine.judge(sample, ("A",), "candidate")
    assert outcome == "Inconclusive" and "no metrics" in message


def test_samples_are_taken_once_per_interval() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B, analysis={"interval": "60s", "consecutiveErrorLimit": 2})
    status, _ = tick(world, v2, status)
    for _ in range(5):  # five errors within one interval count once
        status, _ = tick(world, v2, status, sample=AnalysisSample(at=world.now, error="x"), dt=5)
    assert status.analysis.consecutive_errors == 1 and status.phase == "Progressing"


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


def test_checks_pass_fail_and_inconclusive() -> None:
    sp = spec(analysis={"checks": [
        {"name": "errors", "query": "q1", "successCondition": "result < 0.05"},
        {"name": "lat", "query": "q2", "failureCondition": "result >= 2"}]})
    checks = sp.analysis.checks
    ok = AnalysisSample(at=T0, scraped=frozenset({"candidate"}),
                        checks=(CheckResult("errors", 0.01), CheckResult("lat", 1.0)))
    assert engine.judge(ok, (), "candidate", checks)[0] == "Passed"
    bad = AnalysisSample(at=T0, scraped=frozenset({"candidate"}),
                         checks=(CheckResult("errors", 0.2), CheckResult("lat", 1.0)))
    outcome, message, results = engine.judge(bad, (), "candidate", checks)
    assert outcome == "Failed" and "errors = 0.2" in message
    assert [r.outcome for r in results] == ["Failed", "Passed"]
    fail = AnalysisSample(at=T0, scraped=frozenset({"candidate"}),
                          checks=(CheckResult("errors", 0.0), CheckResult("lat", 2.0)))
    assert engine.judge(fail, (), "candidate", checks)[0] == "Failed"
    nodata = AnalysisSample(at=T0, scraped=frozenset({"candidate"}),
                            checks=(CheckResult("errors", None, "empty result"),
                                    CheckResult("lat", 1.0)))
    outcome, message, _ = engine.judge(nodata, (), "candidate", checks)
    assert outcome == "Inconclusive" and "empty result" in message
    missing = AnalysisSample(at=T0, scraped=frozenset({"candidate"}),
                             checks=(CheckResult("lat", 1.0),))
    assert engine.judge(missing, (), "candidate", checks)[0] == "Inconclusive"


@pytest.mark.parametrize("cond_, value, expected", [
    ("result < 1", 0.5, True), ("result<=1", 1.0, True), ("result > 1e-3", 0.0, False),
    ("result >= -2", -2.0, True), ("result == 3", 3.0, True), ("result != 3", 3.0, False)])
def test_condition_grammar(cond_: str, value: float, expected: bool) -> None:
    assert engine.condition_holds(cond_, value) is expected


def test_condition_grammar_refuses_code() -> None:
    with pytest.raises(ValueError):
        engine.condition_holds("__import__('os')", 1.0)


def test_blue_green_preview_auto_promotion_and_scale_down_delay() -> None:
    bg = {"blueGreen": {"autoPromotionSeconds": 60, "scaleDownDelaySeconds": 30,
                        "prePromotionAnalysis": {"duration": "30s"}}}
    world, status = healthy(spec(strategy=bg))
    v2 = spec(version="v2", sha=SHA_B, strategy=bg)
    status, actions = tick(world, v2, status, sample=passing(world.now))
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": 4, "green": 4}
    assert actions.weight == 0 and actions.candidate_slot == "green"
    status = run_until(world, v2, status, lambda s: s.current_step == 2)  # pause 60s
    started = world.now
    status = run_until(world, v2, status, lambda s: s.promoted)
    assert (world.now - started).total_seconds() >= 60
    _, actions = tick(world, v2, status, sample=passing(world.now), apply=False)
    assert actions.stable_slot == "green" and actions.pod_roles == {"green": "stable",
                                                                    "blue": "previous"}
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": 4, "green": 4}
    status = run_until(world, v2, status, lambda s: s.phase == "Healthy")
    assert (world.now - started).total_seconds() >= 90
    _, actions = tick(world, v2, status)
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": 0, "green": 4}


def test_blue_green_without_auto_promotion_waits_for_promote() -> None:
    bg = {"blueGreen": {"autoPromotionEnabled": False}}
    world, status = healthy(spec(strategy=bg))
    v2 = spec(version="v2", sha=SHA_B, strategy=bg)
    status = run_until(world, v2, status, lambda s: s.phase == "Paused")
    for _ in range(10):
        status, _ = tick(world, v2, status, sample=passing(world.now), dt=600)
    assert not status.promoted
    status, _ = tick(world, v2, status, control="promote", sample=passing(world.now))
    assert status.promoted and status.stable_version == "v2"


def test_blue_green_post_promotion_failure_switches_back() -> None:
    bg = {"blueGreen": {"postPromotionAnalysis": {"duration": "60s"},
                        "scaleDownDelaySeconds": 30}}
    world, status = healthy(spec(strategy=bg))
    v2 = spec(version="v2", sha=SHA_B, strategy=bg)
    status = run_until(world, v2, status, lambda s: s.promoted)
    assert status.stable_slot == "green"
    bad = AnalysisSample(at=world.now, scraped=frozenset({"stable", "previous"}),
                         firing={"stable": (("ModelHighErrorRate", 0.3),)})
    status, actions = tick(world, v2, status, sample=bad)
    assert status.stable_slot == "blue" and status.stable_version == "v1"
    assert status.phase == "Degraded" and actions.stable_slot == "blue"
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": 4, "green": 0}


def test_shadow_mirrors_and_promotes_only_after_analysis() -> None:
    sh = {"shadow": {"duration": "2m"}}
    gw = {"gatewayAPI": {"httpRoute": "iris"}}
    world, status = healthy(spec(strategy=sh, provider=gw))
    v2 = spec(version="v2", sha=SHA_B, strategy=sh, provider=gw)
    status, actions = tick(world, v2, status, sample=passing(world.now))
    assert actions.mirror and actions.weight == 0 and actions.candidate_slot == "green"
    # inconclusive all along: never promoted
    for _ in range(3):
        status, _ = tick(world, v2, status, sample=AnalysisSample(at=world.now, error="x"),
                         dt=60)
    assert not status.promoted
    status = run_until(world, v2, status, lambda s: s.phase == "Healthy")
    assert status.stable_version == "v2"


def test_routed_canary_keeps_stable_whole_and_a_warm_candidate() -> None:
    gw = {"istio": {"virtualService": "iris"}}
    world, status = healthy(spec(provider=gw))
    steps = {"canary": {"steps": [{"setWeight": 0}, {"setWeight": 10}]}}
    v2 = spec(version="v2", sha=SHA_B, provider=gw, strategy=steps)
    status, actions = tick(world, v2, status, sample=passing(world.now))
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": 4, "green": 1}
    assert actions.weight == 0


def test_replica_split_matches_weights() -> None:
    sp = spec(replicas=10)
    assert replica_split(sp, 0, True) == (10, 0)
    assert replica_split(sp, 25, True) == (8, 3)
    assert replica_split(sp, 100, True) == (0, 10)
    assert replica_split(sp, 30, False) == (10, 0)


def test_plan_of_each_strategy() -> None:
    from modeldeploy.operator.model import (Analysis, Pause, Promote, ScaleDownPrevious,
                                            SetWeight, WaitReady)
    assert engine.plan(spec()) == [SetWeight(25), Pause(30.0), SetWeight(50), Analysis(60.0),
                             SetWeight(75), SetWeight(100), Promote(), ScaleDownPrevious(0.0)]
    bg = spec(strategy={"blueGreen": {"postPromotionAnalysis": {}}})
    assert engine.plan(bg) == [WaitReady(), Pause(0.0), Promote(), Analysis(60.0, role="stable"),
                         ScaleDownPrevious(30.0)]
    sh = spec(strategy={"shadow": {"autoPromote": False}}, provider={"istio": {
        "virtualService": "x"}})
    assert engine.plan(sh) == [WaitReady(), Analysis(300.0), Pause(None), Promote(),
                         ScaleDownPrevious(0.0)]


def test_analysis_role_follows_the_rollout() -> None:
    world, status = healthy()
    sp = spec()
    assert engine.analysis_role(sp, status) is None
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    assert engine.analysis_role(v2, status) == "candidate"


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


def test_samples_before_the_rollout_are_ignored() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    old = AnalysisSample(at=world.now - timedelta(seconds=100), scraped=frozenset(),
                         firing={"candidate": (("ModelFeatureDrift", 9.0),)})
    status, _ = tick(world, v2, status, sample=old)
    assert status.phase == "Progressing"

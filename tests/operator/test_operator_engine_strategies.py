"""Each strategy's schedule (its plan) and traffic: canary, blue/green, shadow."""

from __future__ import annotations

import pytest
from opworld import SHA_B, healthy, passing, run_until, spec, tick

from modeldeploy.operator import engine
from modeldeploy.operator.engine.bluegreen import BLUE_GREEN
from modeldeploy.operator.engine.canary import CANARY
from modeldeploy.operator.engine.shadow import SHADOW
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import (
    Analysis,
    Pause,
    Promote,
    ScaleDownPrevious,
    SetWeight,
    SpecError,
    WaitReady,
)
from modeldeploy.operator.routers import replica_split


def test_blue_green_preview_auto_promotion_and_scale_down_delay() -> None:
    bg = {
        "blueGreen": {
            "autoPromotionSeconds": 60,
            "scaleDownDelaySeconds": 30,
            "prePromotionAnalysis": {"duration": "30s"},
        }
    }
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
    assert actions.stable_slot == "green" and actions.pod_roles == {
        "green": "stable",
        "blue": "previous",
    }
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
    bg = {"blueGreen": {"postPromotionAnalysis": {"duration": "60s"}, "scaleDownDelaySeconds": 30}}
    world, status = healthy(spec(strategy=bg))
    v2 = spec(version="v2", sha=SHA_B, strategy=bg)
    status = run_until(world, v2, status, lambda s: s.promoted)
    assert status.stable_slot == "green"
    bad = AnalysisSample(
        at=world.now,
        scraped=frozenset({"stable", "previous"}),
        firing={"stable": (("ModelHighErrorRate", 0.3),)},
    )
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
        status, _ = tick(world, v2, status, sample=AnalysisSample(at=world.now, error="x"), dt=60)
    assert not status.promoted
    # The step's time went by without evidence: paused, not promoted, until resumed.
    status = run_until(world, v2, status, lambda s: s.phase == "Paused")
    assert "insufficient evidence: 0 of 100 predictions" in status.message
    assert not status.promoted
    status, _ = tick(world, v2, status, sample=passing(world.now), control="resume")
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
    from modeldeploy.operator.model import (
        Analysis,
        Pause,
        Promote,
        ScaleDownPrevious,
        SetWeight,
        WaitReady,
    )

    assert engine.plan(spec()) == [
        SetWeight(25),
        Pause(30.0),
        SetWeight(50),
        Analysis(60.0),
        SetWeight(75),
        SetWeight(100),
        Promote(),
        ScaleDownPrevious(0.0),
    ]
    bg = spec(strategy={"blueGreen": {"postPromotionAnalysis": {}}})
    assert engine.plan(bg) == [
        WaitReady(),
        Pause(0.0),
        Promote(),
        Analysis(60.0, role="stable"),
        ScaleDownPrevious(30.0),
    ]
    sh = spec(
        strategy={"shadow": {"autoPromote": False}}, provider={"istio": {"virtualService": "x"}}
    )
    assert engine.plan(sh) == [
        WaitReady(),
        Analysis(300.0),
        Pause(None),
        Promote(),
        ScaleDownPrevious(0.0),
    ]


# --- each strategy module's plan, on its own -----------------------------------------------


def test_canary_plan_reads_the_user_steps_then_promotes() -> None:
    steps = {
        "canary": {
            "steps": [
                {"setWeight": 5},
                {"pause": {}},
                {"pause": None},
                {"analysis": {}},
                {"analysis": {"duration": "1m30s"}},
            ]
        }
    }
    assert CANARY.plan(spec(strategy=steps)) == [
        SetWeight(5),
        Pause(None),
        Pause(None),
        Analysis(60.0),
        Analysis(90.0),
        SetWeight(100),
        Promote(),
        ScaleDownPrevious(0.0),
    ]
    assert CANARY.plan(spec(strategy={"canary": {"steps": []}})) == [
        SetWeight(100),
        Promote(),
        ScaleDownPrevious(0.0),
    ]
    with pytest.raises(SpecError, match="unknown canary step"):
        CANARY.plan(spec(strategy={"canary": {"steps": [{"setReplicas": 1}]}}))
    assert CANARY.traffic(40) == (40, False)


def test_blue_green_plan_defaults_and_options() -> None:
    assert BLUE_GREEN.plan(spec(strategy={"blueGreen": {}})) == [
        WaitReady(),
        Pause(0.0),
        Promote(),
        ScaleDownPrevious(30.0),
    ]
    full = {
        "blueGreen": {
            "prePromotionAnalysis": {"duration": "2m"},
            "postPromotionAnalysis": {},
            "autoPromotionEnabled": False,
            "autoPromotionSeconds": 99,
            "scaleDownDelaySeconds": 5,
        }
    }
    assert BLUE_GREEN.plan(spec(strategy=full)) == [
        WaitReady(),
        Analysis(120.0),
        Pause(None),
        Promote(),
        Analysis(60.0, role="stable"),
        ScaleDownPrevious(5.0),
    ]
    auto = {"blueGreen": {"autoPromotionSeconds": 45}}
    assert BLUE_GREEN.plan(spec(strategy=auto))[1] == Pause(45.0)
    assert BLUE_GREEN.traffic(70) == (0, False)  # only the preview Service reaches it


def test_shadow_plan_analyses_then_promotes_or_waits() -> None:
    gw = {"gatewayAPI": {"httpRoute": "r"}}
    assert SHADOW.plan(spec(strategy={"shadow": {}}, provider=gw)) == [
        WaitReady(),
        Analysis(300.0),
        Promote(),
        ScaleDownPrevious(0.0),
    ]
    manual = {"shadow": {"duration": "10m", "autoPromote": False}}
    assert SHADOW.plan(spec(strategy=manual, provider=gw)) == [
        WaitReady(),
        Analysis(600.0),
        Pause(None),
        Promote(),
        ScaleDownPrevious(0.0),
    ]
    assert SHADOW.traffic(0) == (0, True)


def test_every_strategy_of_the_spec_has_a_module_and_one_promotion() -> None:
    assert set(engine.STRATEGIES) == {"canary", "blueGreen", "shadow"}
    for name, section in (
        ("canary", {"steps": [{"setWeight": 1}]}),
        ("blueGreen", {}),
        ("shadow", {}),
    ):
        sp = spec(strategy={name: section})
        assert engine.strategy_of(sp).name == name
        steps = engine.plan(sp)
        # the step machine relies on this: one Promote, and ScaleDownPrevious last
        assert sum(isinstance(s, Promote) for s in steps) == 1
        assert isinstance(steps[-1], ScaleDownPrevious)

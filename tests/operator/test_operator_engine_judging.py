"""Analysis in the engine: judging samples, checks, and how samples count."""

from __future__ import annotations

from datetime import timedelta

import pytest
from opworld import SHA_B, T0, healthy, passing, spec, tick

from modeldeploy.operator import engine
from modeldeploy.operator.evidence import AnalysisSample, CheckResult


def test_inconclusive_never_promotes_and_rolls_back_after_the_limit() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B, analysis={"interval": "10s", "consecutiveErrorLimit": 3})
    status, _ = tick(world, v2, status, sample=passing(world.now))
    down = AnalysisSample(at=world.now, error="connection refused")
    for i in range(2):
        status, actions = tick(
            world, v2, status, sample=AnalysisSample(at=world.now, error="connection refused")
        )
        assert status.analysis.consecutive_errors == i + 1
        assert "AnalysisInconclusive" in [e.reason for e in actions.events]
    assert status.phase == "Progressing"
    status, _ = tick(world, v2, status, sample=AnalysisSample(at=world.now, error="refused"))
    assert status.phase == "Degraded"
    assert status.history[0].reason == "AnalysisInconclusive"
    assert down.error in status.analysis.message or "refused" in status.message


def test_inconclusive_with_on_error_limit_pause() -> None:
    world, status = healthy()
    v2 = spec(
        version="v2",
        sha=SHA_B,
        analysis={"interval": "10s", "consecutiveErrorLimit": 2, "onErrorLimit": "pause"},
    )
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


def test_checks_pass_fail_and_inconclusive() -> None:
    sp = spec(
        analysis={
            "checks": [
                {"name": "errors", "query": "q1", "successCondition": "result < 0.05"},
                {"name": "lat", "query": "q2", "failureCondition": "result >= 2"},
            ]
        }
    )
    checks = sp.analysis.checks
    ok = AnalysisSample(
        at=T0,
        scraped=frozenset({"candidate"}),
        checks=(CheckResult("errors", 0.01), CheckResult("lat", 1.0)),
    )
    assert engine.judge(ok, (), "candidate", checks)[0] == "Passed"
    bad = AnalysisSample(
        at=T0,
        scraped=frozenset({"candidate"}),
        checks=(CheckResult("errors", 0.2), CheckResult("lat", 1.0)),
    )
    outcome, message, results = engine.judge(bad, (), "candidate", checks)
    assert outcome == "Failed" and "errors = 0.2" in message
    assert [r.outcome for r in results] == ["Failed", "Passed"]
    fail = AnalysisSample(
        at=T0,
        scraped=frozenset({"candidate"}),
        checks=(CheckResult("errors", 0.0), CheckResult("lat", 2.0)),
    )
    assert engine.judge(fail, (), "candidate", checks)[0] == "Failed"
    nodata = AnalysisSample(
        at=T0,
        scraped=frozenset({"candidate"}),
        checks=(CheckResult("errors", None, "empty result"), CheckResult("lat", 1.0)),
    )
    outcome, message, _ = engine.judge(nodata, (), "candidate", checks)
    assert outcome == "Inconclusive" and "empty result" in message
    missing = AnalysisSample(
        at=T0, scraped=frozenset({"candidate"}), checks=(CheckResult("lat", 1.0),)
    )
    assert engine.judge(missing, (), "candidate", checks)[0] == "Inconclusive"


@pytest.mark.parametrize(
    "cond_, value, expected",
    [
        ("result < 1", 0.5, True),
        ("result<=1", 1.0, True),
        ("result > 1e-3", 0.0, False),
        ("result >= -2", -2.0, True),
        ("result == 3", 3.0, True),
        ("result != 3", 3.0, False),
    ],
)
def test_condition_grammar(cond_: str, value: float, expected: bool) -> None:
    assert engine.condition_holds(cond_, value) is expected


def test_condition_grammar_refuses_code() -> None:
    with pytest.raises(ValueError):
        engine.condition_holds("__import__('os')", 1.0)


def test_samples_before_the_rollout_are_ignored() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    old = AnalysisSample(
        at=world.now - timedelta(seconds=100),
        scraped=frozenset(),
        firing={"candidate": (("ModelFeatureDrift", 9.0),)},
    )
    status, _ = tick(world, v2, status, sample=old)
    assert status.phase == "Progressing"


def test_analysis_role_follows_the_rollout() -> None:
    world, status = healthy()
    sp = spec()
    assert engine.analysis_role(sp, status) is None
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    assert engine.analysis_role(v2, status) == "candidate"

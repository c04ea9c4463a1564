"""The stable model's input drift shows on the ModelDeployment (a condition and an Event),
without a rollout and without touching traffic: the signal a retraining pipeline listens to."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opworld import T0, spec

from modeldeploy.operator import engine
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import Observations, SlotObservation


def _healthy() -> dict[str, Any]:
    s = spec()
    slots = {
        "blue": SlotObservation(
            exists=True,
            revision=s.template.revision,
            replicas=4,
            ready_replicas=4,
            updated_replicas=4,
            up_to_date=True,
        )
    }
    status, _ = engine.reconcile(s, RolloutStatus(), Observations(slots=slots), T0)
    status, _ = engine.reconcile(s, status, Observations(slots=slots), T0)
    assert status.phase == "Healthy"
    return {"status": status, "slots": slots}


def _step(
    state: dict[str, Any], sample: AnalysisSample | None, seconds: int
) -> tuple[RolloutStatus, list[Any], Any]:
    s = spec()
    status, actions = engine.reconcile(
        s,
        state["status"],
        Observations(slots=state["slots"], analysis=sample),
        T0 + timedelta(seconds=seconds),
    )
    state["status"] = status
    return status, list(actions.events), actions


def test_stable_drift_sets_the_condition_and_posts_one_event() -> None:
    state = _healthy()
    firing = {"stable": (('ModelFeatureDrift{feature="a"}', 0.87), ("ModelFeatureDrift", 0.31))}
    sample = AnalysisSample(
        at=T0 + timedelta(seconds=10), firing=firing, scraped=frozenset({"stable"})
    )
    status, events, actions = _step(state, sample, 10)
    cond = status.condition("InputDrift")
    assert cond is not None and cond.status == "True"
    assert cond.reason == "ModelFeatureDrift" and "0.87" in cond.message
    assert [(e.type, e.reason) for e in events] == [("Warning", "StableDrift")]
    assert "0.87" in events[0].message and "v1" in events[0].message
    assert status.phase == "Healthy" and actions.weight == 0  # no rollout, no traffic change
    # Still firing: the condition stays, no second Event.
    status, events, _ = _step(
        state, AnalysisSample(at=T0 + timedelta(seconds=20), firing=firing), 20
    )
    assert status.condition("InputDrift").status == "True"
    assert events == []


def test_drift_clears_and_errors_change_nothing() -> None:
    state = _healthy()
    firing = {"stable": (("ModelFeatureDrift", 0.5),)}
    _step(state, AnalysisSample(at=T0, firing=firing), 10)
    status, events, _ = _step(state, AnalysisSample(at=T0, error="connection refused"), 20)
    assert status.condition("InputDrift").status == "True" and events == []
    status, events, _ = _step(state, None, 25)
    assert status.condition("InputDrift").status == "True" and events == []
    status, events, _ = _step(state, AnalysisSample(at=T0), 30)
    cond = status.condition("InputDrift")
    assert cond.status == "False" and cond.reason == "NoDrift"
    assert [e.reason for e in events] == ["StableDriftCleared"]


def test_other_alerts_and_candidate_drift_do_not_set_it() -> None:
    state = _healthy()
    firing = {"stable": (("ModelHighLatency", 2.0),), "candidate": (("ModelFeatureDrift", 1.0),)}
    status, events, _ = _step(state, AnalysisSample(at=T0, firing=firing), 10)
    assert status.condition("InputDrift") is None and events == []

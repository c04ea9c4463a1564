"""The retraining loop's pure state machine (``retraining``): what starts a run, what holds
it (cooldown, daily limit, a rollout) with one Event per change, how the Jobs' answers move
it on (trainer failure and timeout, gate pass and fail, manual approval) and the alias move.

Every state written goes through the apiserver's pruning with the CRD's status schema, as in
the reconcile, so a field the schema does not declare would be lost here too.
"""

from __future__ import annotations

import json
from datetime import timedelta

from opworld import T0, pruned
from retrainloop import DRIFT, RETRAIN_SCHEMA, SHA_NEW, STABLE, Loop, rspec

from modeldeploy.operator import defaults as d
from modeldeploy.operator import gatetags as gt
from modeldeploy.operator import retraining as r
from modeldeploy.operator import retrainsync
from modeldeploy.server.contract import retrain as c


def test_an_alert_firing_for_the_stable_starts_a_run_with_the_recent_window() -> None:
    loop = Loop()
    quiet = loop.tick()
    assert quiet.jobs == () and quiet.events == () and loop.state["phase"] == "Idle"
    started = loop.tick(firing=DRIFT)
    run = loop.state["current"]
    assert loop.state["phase"] == "Training" and started.jobs == ("train",)
    assert run["trigger"] == "alert" and run["alert"].startswith(d.ALERT_DRIFT)
    assert run["value"] == "0.31" and run["currentURI"] == STABLE.uri
    # The day before the alert, and the labels of the minute after it (collectSeconds 60).
    assert run["since"] == "2025-12-31T00:00:20Z" and run["startedAt"] == "2026-01-01T00:00:20Z"
    assert run["until"] == "2026-01-01T00:01:20Z"
    assert run["trainJob"] == "churn-train-1" and loop.state["runs"] == 1
    assert loop.reasons() == ["RetrainStarted"]
    assert "0.31" in loop.events[0][1] and "version" not in run


def test_a_run_started_by_an_alert_names_when_the_drift_began() -> None:
    # The trainer profiles the new version's inputs from there; never before the window.
    loop = Loop()
    loop.tick(firing=DRIFT, firing_since=T0 - timedelta(minutes=3))
    assert loop.state["current"]["referenceSince"] == "2025-12-31T23:57:00Z"
    early = Loop(rspec(labelledData={"uri": "s3://labels/churn", "windowSeconds": 60}))
    early.tick(firing=DRIFT, firing_since=T0 - timedelta(hours=2))
    assert early.state["current"]["referenceSince"] == early.state["current"]["since"]
    # No activeAt known, or a run the control started: the whole window is the reference.
    unknown = Loop()
    unknown.tick(firing=DRIFT)
    assert "referenceSince" not in unknown.state["current"]
    control = Loop()
    control.tick(control="retrain", firing_since=T0)
    assert "referenceSince" not in control.state["current"]
    # Nor does the control's run wait for more labels: there is no drift to collect.
    assert control.state["current"]["until"] == control.state["current"]["startedAt"]
    quick = Loop(rspec(labelledData={"uri": "s3://labels/churn", "collectSeconds": 0}))
    quick.tick(firing=DRIFT)
    assert quick.state["current"]["until"] == quick.state["current"]["startedAt"]


def test_no_run_while_a_rollout_is_active_and_one_held_event_per_change() -> None:
    loop = Loop()
    for _ in range(5):
        held = loop.tick(firing=DRIFT, rollout_active=True)
        assert held.jobs == ()
    assert loop.reasons() == ["RetrainHeld"]
    assert "rollout" in loop.events[0][1] and loop.state["held"] == "a rollout is in progress"
    loop.tick(firing=DRIFT)
    assert loop.reasons() == ["RetrainHeld", "RetrainStarted"]


def test_a_failed_trainer_is_reported_and_the_retry_waits_for_the_cooldown() -> None:
    loop = Loop(rspec(cooldownSeconds=600))
    loop.tick(firing=DRIFT)
    loop.finish("churn-train-1", "failed", None, code=3, reason="BackoffLimitExceeded")
    loop.tick(firing=DRIFT)
    assert loop.state["phase"] == "Failed" and "current" not in loop.state
    entry = loop.state["history"][0]
    assert entry["outcome"] == "Failed" and "exit code 3" in entry["reason"]
    assert loop.reasons() == ["RetrainStarted", "RetrainFailed", "RetrainHeld"]
    for _ in range(50):  # drift persists for 500 s more: held, silently
        assert loop.tick(firing=DRIFT).jobs == ()
    assert loop.reasons().count("RetrainHeld") == 1
    assert loop.state["held"] == "cooldown until 2026-01-01T00:10:10Z"
    loop.tick(seconds=90, firing=DRIFT)
    assert loop.state["phase"] == "Training" and loop.state["current"]["id"] == "2"


def test_a_timed_out_trainer_fails_the_run() -> None:
    loop = Loop()
    loop.tick(firing=DRIFT)
    loop.finish("churn-train-1", "failed", None, code=137, reason="DeadlineExceeded")
    loop.tick()
    assert "DeadlineExceeded" in loop.state["history"][0]["reason"]
    assert loop.events[-1][0] == "RetrainFailed" and "DeadlineExceeded" in loop.events[-1][1]


def test_the_daily_limit_holds_runs_for_24_hours_whatever_the_cooldown() -> None:
    loop = Loop(rspec(cooldownSeconds=0, maxPerDay=2))
    for n in (1, 2):
        loop.tick(firing=DRIFT)
        loop.finish(f"churn-train-{n}", "failed", None, code=1, reason="BackoffLimitExceeded")
        loop.tick(firing=DRIFT)  # fails, and (cooldown 0) run 2 starts at once / run 3 held
    assert loop.state["runs"] == 2 and loop.state["phase"] == "Failed"
    assert "maxPerDay 2" in loop.state["held"]
    for _ in range(200):  # drift for 33 h more, ticks 10 min apart
        loop.tick(seconds=600, firing=DRIFT)
        if loop.state["phase"] == "Training":
            break
    assert loop.state["runs"] == 3
    # run 1 started at 00:00:10: the first 10-minute tick from 24 h later starts run 3
    assert loop.state["current"]["startedAt"] == "2026-01-02T00:00:40Z"
    assert loop.state["starts"] == ["2026-01-02T00:00:40Z"]  # runs 1 and 2 left the 24 h
    assert loop.reasons().count("RetrainHeld") == 1


def test_the_trainers_answer_starts_the_gate_and_a_missing_answer_fails() -> None:
    loop = Loop()
    loop.tick(firing=DRIFT)
    loop.trained()
    gating = loop.tick()
    run = loop.state["current"]
    assert loop.state["phase"] == "Gating" and gating.jobs == ("gate",)
    assert run["version"] == "5" and run["sha256"] == SHA_NEW and run["gateJob"] == "churn-gate-1"
    assert loop.events[-1][0] == "RetrainGating"

    bad = Loop()
    bad.tick(firing=DRIFT)
    bad.finish("churn-train-1", "succeeded", "not json")
    bad.tick()
    assert bad.state["phase"] == "Failed" and bad.events[-1][0] == "RetrainFailed"


def test_a_passing_gate_moves_the_alias_and_the_run_is_promoted() -> None:
    loop = Loop()
    loop.tick(firing=DRIFT)
    loop.trained()
    loop.tick()
    passed = {c.RESULT_PASSED: True, c.RESULT_SUMMARY: "accuracy 0.91 vs 0.84", "checks": []}
    loop.finish("churn-gate-1", "succeeded", passed)
    decision = loop.tick()
    assert decision.move_alias == r.AliasMove("5") and loop.state["phase"] == "Promoting"
    assert decision.jobs == ()  # a finished Job is never run again
    assert loop.events[-1] == ("GatePassed", "run 1: version 5 passed: accuracy 0.91 vs 0.84")
    failed = r.alias_moved(loop.spec, loop.state, loop.now, "production", "503: unavailable")
    assert (
        failed.state["phase"] == "Promoting" and failed.events[0].reason == "RetrainPromoteFailed"
    )
    again = r.alias_moved(loop.spec, failed.state, loop.now, "production", "503: unavailable")
    assert again.events == ()  # the same failure is not news
    done = r.alias_moved(loop.spec, again.state, loop.now, "production")
    entry = done.state["history"][0]
    assert done.state["phase"] == "Idle" and entry["outcome"] == "Promoted"
    assert entry["version"] == "5" and entry["gateSummary"] == "accuracy 0.91 vs 0.84"
    assert "alias production -> version 5" in done.events[0].message
    assert pruned(done.state, RETRAIN_SCHEMA) == done.state


def test_a_failing_gate_rejects_the_version_and_never_moves_the_alias() -> None:
    loop = Loop()
    loop.tick(firing=DRIFT)
    loop.trained()
    loop.tick()
    rejected = {c.RESULT_PASSED: False, c.RESULT_SUMMARY: "accuracy 0.70 vs 0.84 (-0.14)"}
    loop.finish("churn-gate-1", "failed", rejected, code=1, reason="BackoffLimitExceeded")
    decisions = [loop.tick(firing=DRIFT) for _ in range(5)]
    assert all(x.move_alias is None for x in decisions)
    assert loop.state["phase"] == "Rejected"
    assert loop.state["history"][0]["outcome"] == "Rejected"
    assert ("GateFailed", "run 1: version 5 rejected: accuracy 0.70 vs 0.84 (-0.14)") in (
        loop.events
    )


def test_a_gate_that_could_not_decide_fails_the_run() -> None:
    loop = Loop()
    loop.tick(firing=DRIFT)
    loop.trained()
    loop.tick()
    loop.finish("churn-gate-1", "failed", None, code=2, reason="BackoffLimitExceeded")
    assert loop.tick().move_alias is None
    assert loop.state["phase"] == "Failed" and loop.events[-1][0] == "RetrainFailed"


def test_manual_approval_waits_for_the_promote_control() -> None:
    loop = Loop(rspec(approval="manual"))
    loop.tick(firing=DRIFT)
    loop.trained()
    loop.tick()
    loop.finish("churn-gate-1", "succeeded", {c.RESULT_PASSED: True, c.RESULT_SUMMARY: "ok"})
    waits = [loop.tick() for _ in range(10)]
    assert all(x.move_alias is None for x in waits) and loop.state["phase"] == "AwaitingApproval"
    assert loop.reasons()[-2:] == ["GatePassed", "RetrainAwaitingApproval"]
    approved = loop.tick(control="promote")
    assert approved.move_alias == r.AliasMove("5") and loop.reasons()[-1] == "RetrainApproved"


def test_the_retrain_control_starts_a_run_within_the_same_limits() -> None:
    loop = Loop()
    loop.tick(control="retrain")
    assert loop.state["current"]["trigger"] == "control"
    loop.tick(control="retrain")  # a run is in progress
    assert loop.reasons() == ["RetrainStarted", "RetrainHeld"] and loop.state["runs"] == 1
    loop.finish("churn-train-1", "failed", None, code=1, reason="BackoffLimitExceeded")
    loop.tick()
    loop.tick(control="retrain")
    loop.tick(control="retrain")
    assert loop.reasons()[-2:] == ["RetrainHeld", "RetrainHeld"]  # each control is answered
    assert "cooldown" in loop.events[-1][1] and loop.state["runs"] == 1


def test_the_fallback_schedule_runs_when_the_last_run_is_that_old() -> None:
    loop = Loop(rspec(trigger={"alerts": [], "intervalSeconds": 3600}, cooldownSeconds=0))
    loop.tick()
    for _ in range(35):
        loop.tick(seconds=100)
    assert "current" not in loop.state
    loop.tick(seconds=100)
    assert loop.state["current"]["trigger"] == "interval"
    assert "every 3600 s" in loop.events[-1][1]


def test_old_runs_jobs_are_deleted_and_the_last_few_kept() -> None:
    loop = Loop(rspec(cooldownSeconds=0, maxPerDay=10))
    for n in range(1, 6):
        loop.tick(firing=DRIFT)
        loop.finish(f"churn-train-{n}", "failed", None, code=1, reason="BackoffLimitExceeded")
        loop.tick()
    decision = loop.tick()
    assert decision.delete == ("churn-train-1", "churn-train-2")
    assert len(loop.state["history"]) == 5


def test_job_prefix_keeps_job_names_label_sized() -> None:
    long = "m" * 253
    name = r.job_name(r.job_prefix(long), "train", "100")
    assert len(name) <= 63 and r.job_prefix("churn") == "churn"
    assert r.job_prefix(long) != r.job_prefix("m" * 252)


def test_the_alias_move_is_the_registrys_set_alias_call() -> None:
    from modeldeploy.server.contract import registry as reg

    alias, request = retrainsync.alias_request("models:/churn@production", "5")
    assert alias == "production"
    assert request == reg.set_alias_request("churn", "production", "5")
    assert request.method == "POST" and request.params["version"] == "5"


def test_the_reconcile_hands_on_only_a_new_control_verb() -> None:
    from modeldeploy.operator import retrainsync
    from modeldeploy.operator.engine import RolloutStatus

    seen = RolloutStatus(last_control="retrain/1")
    assert retrainsync.new_control("retrain/1", seen) is None
    assert retrainsync.new_control("retrain/2", seen) == "retrain"
    assert retrainsync.new_control("promote/2", seen) == "promote"
    assert retrainsync.awaiting({"retrain": {"phase": "AwaitingApproval"}})
    assert not retrainsync.awaiting({"retrain": {"phase": "Gating"}}) and not retrainsync.awaiting(
        {}
    )


def test_the_trigger_reads_the_stables_version_in_the_reconciles_sample() -> None:
    from opworld import body

    from modeldeploy.operator import retrainsync
    from modeldeploy.operator.engine import RolloutStatus
    from modeldeploy.operator.evidence import AnalysisSample
    from modeldeploy.operator.model import Spec

    raw = body()
    raw["spec"]["model"] = {
        "name": "churn",
        "version": "4",
        "bundleURI": "models:/churn@production",
        "mlflow": {"trackingURI": "http://mlflow.ml.svc:5000"},
    }
    raw["spec"]["retrain"] = {
        "trainer": {"image": "t:1"},
        "labelledData": {"uri": "s3://labels/churn"},
        "trigger": {"alerts": [d.ALERT_DRIFT, d.ALERT_CONCEPT_DRIFT]},
    }
    sp = Spec.from_body(raw)
    drift = d.ALERT_DRIFT + '{feature="plan"}'
    sample = AnalysisSample(
        at=T0,
        firing={
            ("stable", "4"): ((drift, 0.4), (d.ALERT_LATENCY, 2.0)),
            ("stable", "3"): ((d.ALERT_CONCEPT_DRIFT, 1.0),),  # an older stable's
            ("candidate", "5"): ((d.ALERT_DRIFT, 0.9),),
        },
    )
    status = RolloutStatus(stable_version="4")
    assert retrainsync.stable_firing(sp, sample, status) == ((drift, 0.4),)
    # When the drift began: the earliest trigger alert of the stable's version, not the
    # latency alert's nor an older stable's.
    since = AnalysisSample(
        at=T0,
        firing=sample.firing,
        active_since={
            ("stable", "4", drift): T0 - timedelta(seconds=40),
            ("stable", "4", d.ALERT_LATENCY): T0 - timedelta(seconds=90),
            ("stable", "3", d.ALERT_CONCEPT_DRIFT): T0 - timedelta(seconds=99),
        },
    )
    assert retrainsync.stable_firing_since(sp, since, status) == T0 - timedelta(seconds=40)
    assert retrainsync.stable_firing_since(sp, sample, status) is None
    assert retrainsync.stable_firing(sp, AnalysisSample(at=T0, error="down"), status) == ()
    assert retrainsync.stable_firing(sp, None, status) == ()
    loaded = AnalysisSample(at=T0, rules={d.ALERT_DRIFT: "", d.ALERT_LATENCY: ""})
    assert retrainsync.unloaded_alerts(sp, loaded) == (d.ALERT_CONCEPT_DRIFT,)
    assert retrainsync.unloaded_alerts(sp, AnalysisSample(at=T0)) is None  # rules not read


def test_runs_are_counted_once_by_outcome() -> None:
    from prometheus_client import CollectorRegistry

    from modeldeploy.operator.metrics import OperatorMetrics, record_retrain

    registry = CollectorRegistry()
    metrics = OperatorMetrics.create(registry)
    loop = Loop(rspec(cooldownSeconds=0))
    record_retrain(metrics, loop.tick(firing=DRIFT).events)
    loop.finish("churn-train-1", "failed", None, code=1, reason="BackoffLimitExceeded")
    record_retrain(metrics, loop.tick().events)
    for _ in range(5):
        record_retrain(metrics, loop.tick().events)  # quiet: nothing new

    def count(outcome: str) -> float | None:
        return registry.get_sample_value(
            "modeldeploy_operator_retrain_runs_total", {"outcome": outcome}
        )

    assert (count("started"), count("failed")) == (1.0, 1.0)
    assert count("promoted") is None


def test_a_trigger_alert_that_is_not_loaded_is_said_once() -> None:
    loop = Loop(rspec(trigger={"alerts": [d.ALERT_DRIFT, "NoSuchAlert"]}))
    for _ in range(5):
        loop.tick(unloaded=("NoSuchAlert",))
    loop.tick(unloaded=None)  # the rules were not read this time: nothing is known
    assert loop.reasons() == ["RetrainTriggerUnknown"]
    assert "NoSuchAlert" in loop.events[0][1] and loop.state["unloadedAlerts"] == "NoSuchAlert"
    loop.tick(unloaded=())
    assert "unloadedAlerts" not in loop.state
    loop.tick(unloaded=("NoSuchAlert",))
    assert loop.reasons() == ["RetrainTriggerUnknown"] * 2


def test_a_gate_job_that_succeeded_without_a_verdict_never_promotes() -> None:
    loop = Loop()
    loop.tick(firing=DRIFT)
    loop.trained()
    loop.tick()
    loop.finish("churn-gate-1", "succeeded", {c.RESULT_SUMMARY: "no passed field"})
    assert loop.tick().move_alias is None
    assert loop.state["phase"] == "Failed"
    assert loop.events[-1] == (
        "RetrainFailed",
        "run 1: the gate could not decide: Job churn-gate-1 gave no verdict",
    )


def test_the_gate_table_waits_for_the_registry_and_a_failed_write_is_retried_later() -> None:
    loop = Loop()
    loop.tick(firing=DRIFT)
    loop.trained()
    loop.tick()
    checks = [{"name": "accuracy", "value": 0.7, "threshold": 0.83, "passed": False}]
    answer = {c.RESULT_PASSED: False, c.RESULT_SUMMARY: "1 failed: accuracy", "checks": checks}
    loop.finish("churn-gate-1", "failed", answer, code=1)
    loop.tick()
    entry = loop.state["history"][0]
    assert entry["gateVerdict"] == "rejected" and entry["gateTags"] == {"state": "pending"}
    assert gt.pending(loop.state, loop.now) == [entry]
    calls = gt.requests(entry, "ml/churn", loop.now)
    tags = {r.params["key"]: r.params["value"] for r in calls}
    assert {r.params["name"] for r in calls} == {"churn"}
    assert {r.params["version"] for r in calls} == {"5"}
    assert json.loads(tags[gt.TAG_CHECKS]) == checks
    assert tags[gt.TAG_VERDICT] == "rejected" and tags[gt.TAG_SUMMARY] == "1 failed: accuracy"
    assert (tags[gt.TAG_RUN], tags[gt.TAG_DEPLOYMENT]) == ("1", "ml/churn")

    failed, events = gt.written(loop.state, "1", loop.now, "503: unavailable")
    assert [e.reason for e in events] == ["GateTagsFailed"]
    assert pruned(failed, RETRAIN_SCHEMA) == failed
    assert gt.pending(failed, loop.now + timedelta(seconds=10)) == []  # not at every tick
    due = gt.pending(failed, loop.now + timedelta(seconds=gt.RETRY_SECONDS))
    assert [r["id"] for r in due] == ["1"]
    again, events = gt.written(failed, "1", loop.now, "503: unavailable")
    assert events == []  # the same failure is not news
    done, events = gt.written(again, "1", loop.now)
    assert [e.reason for e in events] == ["GateTagged"]
    written = done["history"][0]
    assert written["gateTags"]["state"] == "done" and gt.TABLE not in written
    assert gt.pending(done, loop.now + timedelta(days=1)) == []

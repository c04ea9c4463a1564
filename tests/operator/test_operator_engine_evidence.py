"""Evidence or no promotion, in the pure engine: loaded alerting rules, per-version alerts,
minSamples predictions (pause or roll back), start-up waiting and its deadline, and the
reaction to a firing alert between two samples. At the CRD's defaults unless said."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opworld import SHA_B, T0, healthy, passing, spec, tick

from modeldeploy.operator import engine
from modeldeploy.operator.engine import AnalysisState
from modeldeploy.operator.evidence import AnalysisSample

URL = "http://prometheus.monitoring:9090"
CANARY = {"canary": {"steps": [{"setWeight": 50}, {"analysis": {"duration": "60s"}}]}}


def v2(analysis: dict[str, Any] | None = None, **kw: Any) -> Any:
    # interval 10s: the engine's sampling; everything else at the CRD's defaults
    return spec(
        version="v2", sha=SHA_B, strategy=CANARY, analysis={"interval": "10s", **(analysis or {})}
    )


def reasons(actions: Any) -> list[str]:
    return [e.reason for e in actions.events]


def test_a_misspelt_alert_is_inconclusive_and_says_which_and_where() -> None:
    sample = passing(T0, prometheus=URL, rules={"ModelPredictionDivergence": ""})
    outcome, message, _ = engine.judge(sample, ("ModelPredictionDivergense",), "candidate")
    assert outcome == "Inconclusive"
    assert message == f"alert ModelPredictionDivergense is not a loaded alerting rule in {URL}"


def test_rules_not_read_or_failing_are_inconclusive() -> None:
    at = T0
    unread = passing(at, rules=None)
    outcome, message, _ = engine.judge(unread, ("A",), "candidate")
    assert outcome == "Inconclusive" and "were not read" in message
    broken = passing(at, prometheus=URL, rules={"A": "rule in group g has health err: boom"})
    outcome, message, _ = engine.judge(broken, ("A",), "candidate")
    assert outcome == "Inconclusive" and message == f"alert A cannot fire in {URL}: " + (
        "rule in group g has health err: boom"
    )


def test_misspelt_alert_never_promotes_and_rolls_back_at_the_error_limit() -> None:
    world, status = healthy()
    sp = v2({"alerts": ["ModelPredictionDivergense"]})
    seen: list[str] = []
    for _ in range(12):
        status, actions = tick(world, sp, status, sample=passing(world.now, prometheus=URL))
        seen += [e.message for e in actions.events if e.reason == "AnalysisInconclusive"]
        assert status.stable_version == "v1"
    assert status.phase == "Degraded"
    assert status.history[0].reason == "AnalysisInconclusive"
    assert seen and "ModelPredictionDivergense is not a loaded alerting rule" in seen[0]


def test_an_old_versions_alert_never_counts_against_the_new_candidate() -> None:
    world, status = healthy()
    sp = v2()
    stale = {("candidate", "v3"): (("ModelPredictionDivergence", 24.8),)}
    for _ in range(12):
        status, _ = tick(world, sp, status, sample=passing(world.now, firing=stale))
    assert status.phase == "Healthy" and status.stable_version == "v2"
    assert not any(h.outcome == "RolledBack" for h in status.history)


def test_the_candidates_own_version_alert_rolls_back() -> None:
    world, status = healthy()
    sp = v2()
    status, _ = tick(world, sp, status, sample=passing(world.now))
    mine = {("candidate", "v2"): (("ModelPredictionDivergence", 24.8),)}
    status, actions = tick(world, sp, status, sample=passing(world.now, firing=mine))
    assert status.phase == "Degraded" and actions.weight == 0
    assert "ModelPredictionDivergence firing for the candidate v2 (value 24.8)" in (
        status.history[0].message
    )


def test_a_firing_alert_between_samples_rolls_back_at_once() -> None:
    """The fast alerts poll refreshes ``firing`` of the same snapshot: not a due sample, but
    a watched alert for the candidate's version rolls back in the same reconcile."""
    world, status = healthy()
    sp = spec(version="v2", sha=SHA_B, strategy=CANARY)  # the default interval: 30s
    status, _ = tick(world, sp, status, sample=passing(world.now), dt=1)
    snap_at = status.analysis.last_sample_at
    assert snap_at is not None
    fired = passing(
        snap_at,
        firing={("candidate", "v2"): (("ModelHighErrorRate", 0.2),)},
        alerts_at=world.now,
    )
    assert not engine.sample_due(sp, status, fired.at)
    status, actions = tick(world, sp, status, sample=fired, dt=1)
    assert status.phase == "Degraded" and actions.weight == 0
    assert status.history[0].reason == "AnalysisFailed"


def test_no_traffic_pauses_with_a_message_and_resume_goes_on_with_evidence() -> None:
    world, status = healthy()
    sp = v2()
    idle = {"stable": 5.0, "candidate": 5.0}
    events: list[Any] = []
    for _ in range(10):
        status, actions = tick(world, sp, status, sample=passing(world.now, predictions=idle))
        events += actions.events
    assert status.phase == "Paused" and status.paused and status.stable_version == "v1"
    assert status.message.startswith(
        "paused at step 1: insufficient evidence: 0 of 100 predictions (analysis.minSamples) "
        "served by the candidate v2 in step 1 (60s)"
    )
    assert [e.reason for e in events].count("InsufficientEvidence") == 1
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert progressing.reason == "RolloutPaused" and "insufficient evidence" in progressing.message
    # Traffic arrives while paused; resume goes on and the rollout finishes.
    for _ in range(2):
        status, _ = tick(world, sp, status, sample=passing(world.now))
    assert status.paused
    status, _ = tick(world, sp, status, sample=passing(world.now), control="resume")
    for _ in range(5):
        status, _ = tick(world, sp, status, sample=passing(world.now))
    assert status.phase == "Healthy" and status.stable_version == "v2"


def test_no_traffic_with_on_insufficient_evidence_rollback() -> None:
    world, status = healthy()
    sp = v2({"onInsufficientEvidence": "rollback"})
    idle = {"stable": 5.0, "candidate": 5.0}
    for _ in range(10):
        status, _ = tick(world, sp, status, sample=passing(world.now, predictions=idle))
    assert status.phase == "Degraded" and status.stable_version == "v1"
    assert status.history[0].reason == "InsufficientEvidence"
    assert "0 of 100 predictions" in status.history[0].message


def test_min_samples_zero_needs_no_traffic() -> None:
    world, status = healthy()
    sp = v2({"minSamples": 0})
    idle = {"stable": 5.0, "candidate": 5.0}
    for _ in range(10):
        status, _ = tick(world, sp, status, sample=passing(world.now, predictions=idle))
    assert status.phase == "Healthy" and status.stable_version == "v2"


def test_a_counter_reset_is_never_counted_as_evidence() -> None:
    analysis = AnalysisState()
    at = T0
    for total, counted in ((40, 0), (90, 50), (30, 50), (60, 80), (0, 80), (10, 90)):
        sample = AnalysisSample(at=at, predictions={("candidate", "v2"): float(total)})
        engine.count_predictions(analysis, sample, "candidate/v2")
        assert analysis.predictions == counted, total
    # Another version's counter is another baseline, never a difference.
    other = AnalysisSample(at=at, predictions={("candidate", "v3"): 5000.0})
    engine.count_predictions(analysis, other, "candidate/v3")
    assert analysis.predictions == 90 and analysis.predictions_of == "candidate/v3"


def test_start_up_waits_without_counting_errors_then_judges() -> None:
    world, status = healthy()
    sp = v2()
    unscraped = frozenset({"stable"})
    for _ in range(20):  # 200 s of pulling images and fetching the bundle
        status, actions = tick(world, sp, status, sample=passing(world.now, scraped=unscraped))
        assert status.analysis.outcome == "Waiting"
        assert status.analysis.consecutive_errors == 0
        assert "AnalysisInconclusive" not in reasons(actions)
    assert status.phase == "Progressing"
    assert "analysis waiting: waiting for the candidate v2: no metrics" in status.message
    for _ in range(10):
        status, _ = tick(world, sp, status, sample=passing(world.now))
    assert status.phase == "Healthy" and status.stable_version == "v2"


def test_once_scraped_missing_metrics_are_inconclusive() -> None:
    world, status = healthy()
    sp = v2()
    status, _ = tick(world, sp, status, sample=passing(world.now))
    status, actions = tick(world, sp, status, sample=passing(world.now, scraped={"stable"}))
    assert status.analysis.outcome == "Inconclusive" and status.analysis.consecutive_errors == 1
    assert "AnalysisInconclusive" in reasons(actions)


def test_waiting_is_bounded_by_the_progress_deadline_with_the_pods_reason() -> None:
    world, status = healthy()
    sp = v2()
    status, _ = tick(world, sp, status, sample=passing(world.now))
    # Ready pods that Prometheus never scrapes (say, a missing scrape annotation).
    status.analysis.scraped_as = ""  # as if the candidate had not been scraped yet
    for _ in range(70):
        unscraped = passing(world.now, scraped={"stable"}, prometheus=URL)
        status, _ = tick(world, sp, status, sample=unscraped)
        if status.phase == "Degraded":
            break
    assert status.history[0].reason == "ProgressDeadlineExceeded"
    assert status.history[0].message == (
        f"candidate v2 not ready after 600s: its pods are not scraped by {URL}"
    )
    assert world.now - status.history[0].started_at > timedelta(seconds=600)


def test_no_deadline_while_the_weight_asks_for_no_candidate_pods() -> None:
    """A canary held at ``setWeight: 0`` with the replicas router runs no candidate pod:
    nothing is scraped, and that is no start-up to time out."""
    world, status = healthy()
    held = {"canary": {"steps": [{"setWeight": 0}, {"pause": {}}]}}
    sp = spec(version="v2", sha=SHA_B, strategy=held, analysis={"interval": "10s"})
    for _ in range(90):  # 15 minutes, past the 600 s deadline
        status, actions = tick(world, sp, status, sample=passing(world.now, scraped={"stable"}))
    assert status.phase == "Paused" and status.candidate_version == "v2"
    assert status.analysis.outcome == "Waiting" and status.analysis.waiting_since is None

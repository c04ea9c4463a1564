"""The plugin's pure views and control values (no cluster)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.operator import plugin
from modeldeploy.operator.engine import parse_control

SAMPLES = Path(__file__).resolve().parents[2] / "gitops" / "testdata"
NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


def sample(name: str) -> dict[str, Any]:
    return yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())


def event(
    reason: str, seconds_ago: int, type_: str = "Normal", message: str = "m"
) -> dict[str, Any]:
    at = (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": type_, "reason": reason, "message": message, "lastTimestamp": at}


def test_status_of_a_canary_in_progress() -> None:
    text = plugin.render_status(sample("progressing"), [], NOW)
    assert "ModelDeployment ml/churn   strategy canary   model churn" in text
    assert "Phase:       Progressing  step 1/4: setWeight 20, 20% to 1.1.0" in text
    assert "Stable:      1.0.0 in slot blue" in text
    assert "Candidate:   1.1.0 in slot green" in text
    bar = re.search(r"Weight:\s+\[([#.]+)\] 20% to the candidate", text)
    assert bar and bar.group(1).count("#") == plugin.BAR_WIDTH // 5
    assert "Step:        1 (started 5m ago)" in text
    assert "Reconciling=True (Progressing)" in text and "Stalled=False" in text
    slots = [line.split() for line in text.splitlines() if line.startswith(("blue", "green"))]
    assert slots == [["blue", "stable", "1.0.0", "-"], ["green", "candidate", "1.1.0", "-"]]
    assert "Analysis:    Passed 5m ago, 2 passed in a row" in text


def test_status_after_a_rollback_names_the_rule_and_shows_events() -> None:
    events = [event(f"Step{i}", 300 - i) for i in range(10)]
    events.append(event("RolledBack", 20, "Warning", "rolled back 1.2.0: AnalysisFailed"))
    text = plugin.render_status(sample("degraded"), events, NOW)
    assert "Phase:       Degraded  1.2.0 rolled back (AnalysisFailed" in text
    assert "Candidate:" not in text and "Weight:" not in text
    assert re.search(r"alert\s+ModelFeatureDrift\s+0\.9129\s+Failed\s+5m", text)
    assert "Last rollout: 1.2.0 RolledBack 5m ago (AnalysisFailed: alert ModelFeatureDrift" in text
    lines = text.splitlines()
    shown = lines[lines.index("Events:") + 2 :]
    assert len(shown) == plugin.EVENTS_SHOWN
    assert shown[-1].split()[:3] == ["20s", "Warning", "RolledBack"]  # newest last


def test_status_paused_and_stale_and_empty() -> None:
    paused = plugin.render_status(sample("paused"), [], NOW)
    assert "PAUSED" in paused and "Phase:       Paused" in paused
    stale = plugin.render_status(sample("new-generation"), [], NOW)
    assert "Generation:  3 (the operator has seen 2: catching up)" in stale
    empty = plugin.render_status(sample("no-status"), [], NOW)
    assert "no status yet" in empty


def test_history_newest_first_with_durations() -> None:
    obj = sample("degraded")
    obj["status"]["history"][0]["finishedAt"] = "2026-11-23T09:03:25Z"
    rows = plugin.render_history(obj).splitlines()
    head = ["VERSION", "OUTCOME", "REASON", "STARTED", "TOOK", "REGISTRY", "MESSAGE"]
    assert rows[0].split() == head
    assert rows[1].split()[:6] == [
        "1.2.0",
        "RolledBack",
        "AnalysisFailed",
        "2026-11-23T09:00:00Z",
        "3m25s",
        "-",
    ]
    assert [r.split()[0] for r in rows[1:]] == ["1.2.0", "1.1.0", "1.0.0"]
    assert "no rollouts recorded yet" in plugin.render_history(sample("deploying"))


def test_history_shows_what_was_written_back_to_the_registry() -> None:
    obj = sample("degraded")
    first, second = obj["status"]["history"][:2]
    first["writeBack"] = {"state": "failed", "message": "unreachable"}
    second["writeBack"] = {"state": "done", "alias": "production"}
    rows = plugin.render_history(obj).splitlines()
    column = rows[0].split().index("REGISTRY")
    assert [r.split()[column] for r in rows[1:]] == ["failed", "done:production", "-"]


@pytest.mark.parametrize(
    "seconds, text",
    [(5, "5s"), (59, "59s"), (60, "1m"), (7200, "2h"), (3 * 86400 + 5, "3d"), (-10, "0s")],
)
def test_age(seconds: int, text: str) -> None:
    at = (NOW - timedelta(seconds=seconds)).isoformat()
    assert plugin.age(at, NOW) == text
    assert plugin.age(None, NOW) == "-" and plugin.age("yesterday", NOW) == "-"


def test_duration_and_bar() -> None:
    assert plugin.duration("2026-11-23T09:00:00Z", "2026-11-23T10:02:03Z") == "1h2m3s"
    assert plugin.duration("2026-11-23T09:00:00Z", None) == "-"
    assert plugin.weight_bar(0, 10) == "[..........]"
    assert plugin.weight_bar(100, 10) == "[##########]"
    assert plugin.weight_bar(150, 10) == "[##########]"


@pytest.mark.parametrize(
    "verb", ["pause", "resume", "promote", "promote-full", "abort", "retry", "retrain"]
)
def test_control_values_are_unique_and_read_by_the_operator(verb: str) -> None:
    a = plugin.control_value(verb, NOW, "00aa")
    b = plugin.control_value(verb, NOW, "00ab")
    assert a != b and a.startswith(verb + "/")
    assert parse_control(a) == verb  # the operator's own parser


def test_control_value_refuses_unknown_verbs() -> None:
    with pytest.raises(ValueError):
        plugin.control_value("rollback", NOW, "00")


def test_controls_that_cannot_apply_are_refused_with_a_reason() -> None:
    healthy = sample("healthy")
    with pytest.raises(plugin.PluginError, match="no rollout in progress.*nothing to promote"):
        plugin.check_control("promote", healthy)
    with pytest.raises(plugin.PluginError, match="nothing to retry"):
        plugin.check_control("retry", healthy)
    plugin.check_control("pause", healthy)
    plugin.check_control("abort", sample("progressing"))
    plugin.check_control("retry", sample("degraded"))


def test_status_shows_the_evidence_and_why_it_paused() -> None:
    md = sample("progressing")
    md["status"].update(
        paused=True,
        phase="Paused",
        pauseReason="insufficient evidence: 12 of 100 predictions (analysis.minSamples)",
    )
    md["status"]["analysis"].update(outcome="Waiting", predictions=12)
    text = plugin.render_status(md, [], NOW)
    assert "PAUSED: insufficient evidence: 12 of 100 predictions" in text
    assert "Analysis:    Waiting 5m ago" in text
    assert "Evidence:    12 predictions in this step" in text


def retraining(phase: str) -> dict[str, Any]:
    md = sample("healthy")
    md["spec"]["retrain"] = {"trainer": {"image": "t:1"}, "labelledData": {"uri": "s3://l/x"}}
    md["status"]["retrain"] = {
        "phase": phase,
        "message": "version 5 passed the gate; waiting for the promote control",
        "held": "cooldown until 2026-11-23T10:00:00Z",
        "history": [
            {
                "id": "2",
                "outcome": "Rejected",
                "reason": "GateFailed",
                "finishedAt": "2026-11-23T09:00:00Z",
            }
        ],
    }
    return md


def test_status_shows_the_retraining_loop() -> None:
    text = plugin.render_status(retraining("AwaitingApproval"), [], NOW)
    assert "Retrain:     AwaitingApproval  version 5 passed the gate" in text
    assert "Held:        cooldown until 2026-11-23T10:00:00Z" in text
    assert "Last run:    2 Rejected 5m ago (GateFailed)" in text
    assert "Retrain:" not in plugin.render_status(sample("healthy"), [], NOW)
    assert "Adopted:" not in text
    adopted = retraining("Idle")
    uri = "s3://models/retrained/ml/churn/v4-r2.tar.gz"
    adopted["status"]["retrain"]["adopted"] = {"version": "v4-r2", "uri": uri}
    assert f"Adopted:     v4-r2 {uri}" in plugin.render_status(adopted, [], NOW)


def test_promote_approves_a_retrained_version_and_retrain_needs_the_spec() -> None:
    plugin.check_control("promote", retraining("AwaitingApproval"))
    plugin.check_control("retrain", retraining("Idle"))
    with pytest.raises(plugin.PluginError, match="nothing to promote"):
        plugin.check_control("promote", retraining("Training"))
    with pytest.raises(plugin.PluginError, match="no spec.retrain"):
        plugin.check_control("retrain", sample("healthy"))

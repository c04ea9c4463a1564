"""The write-back's pure side (``writeback``): the real engine rolls models:/ versions out
and back in the simulated world of ``opworld``, each status it writes goes through
``carry`` (as in the reconcile) and the apiserver's pruning, and ``pending`` says what is to
write to the registry: the tags, the alias, retries, and nothing when it is off."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opworld import SHA_A, SHA_B, SHA_C, STATUS_SCHEMA, World, passing, pruned, tick

from modeldeploy.operator import writeback as wb
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import Spec
from modeldeploy.operator.schema import crd
from modeldeploy.operator.writeback_task import requests

TRACKING = "http://mlflow.ml.svc:5000"


def body(version: str, sha: str, write_back: dict[str, Any] | None = None) -> dict[str, Any]:
    mlflow: dict[str, Any] = {"trackingURI": TRACKING}
    if write_back is not None:
        mlflow["writeBack"] = write_back
    return {
        "metadata": {"name": "churn", "namespace": "ml", "generation": 1},
        "spec": {
            "model": {
                "name": "churn",
                "version": version,
                "bundleURI": f"models:/churn/{version}",
                "sha256": sha,
                "mlflow": mlflow,
            },
            "replicas": 2,
            "server": {"image": "modeldeploy-server:dev"},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "20s"}}]}},
            "trafficProvider": {"replicas": {}},
            "analysis": {"interval": "10s"},
        },
    }


class Reconciler:
    """The engine plus what the reconcile does with its status: ``carry``, then the write."""

    def __init__(self, write_back: dict[str, Any] | None) -> None:
        self.world, self.raw = World(), RolloutStatus().to_json()
        self.write_back = write_back

    def tick(self, version: str, sha: str, sample: AnalysisSample | None = None) -> None:
        raw_body = body(version, sha, self.write_back)
        spec = Spec.from_body(raw_body)
        status = RolloutStatus.from_json(self.raw)
        new, _ = tick(self.world, spec, status, sample=sample or passing(self.world.now))
        settings = wb.Settings.from_spec(raw_body["spec"])
        self.raw = pruned(wb.carry(self.raw, new.to_json(), settings), STATUS_SCHEMA)

    def until(self, version: str, sha: str, pred: Any, limit: int = 60) -> None:
        for _ in range(limit):
            self.tick(version, sha)
            if pred(self.raw):
                return
        raise AssertionError(f"not reached: {self.raw}")


def healthy_then_promoted(write_back: dict[str, Any] | None) -> Reconciler:
    r = Reconciler(write_back)
    r.until("1", SHA_A, lambda s: s.get("phase") == "Healthy")
    r.tick("2", SHA_B)
    r.until("2", SHA_B, lambda s: (s.get("history") or [{}])[0].get("outcome") == "Promoted")
    return r


def test_a_promotion_is_pending_with_the_alias_and_the_tags() -> None:
    r = healthy_then_promoted({"enabled": True, "alias": "production"})
    entry = r.raw["history"][0]
    assert entry["modelURI"] == "models:/churn/2"
    assert entry["writeBack"] == {
        "state": "pending",
        "trackingURI": TRACKING,
        "alias": "production",
    }
    [item] = wb.pending(r.raw, "ml/churn", r.world.now)
    assert (item.tracking_uri, item.name, item.version, item.alias) == (
        TRACKING,
        "churn",
        "2",
        "production",
    )
    assert dict(item.tags) == {
        "modeldeploy.rollout.outcome": "promoted",
        "modeldeploy.rollout.time": entry["finishedAt"],
        "modeldeploy.rollout.modeldeployment": "ml/churn",
    }
    calls = requests(item)
    assert [(c.method, c.endpoint) for c in calls] == [("POST", "model-versions/set-tag")] * 3 + [
        ("POST", "registered-models/alias")
    ]
    assert calls[-1].params == {"name": "churn", "alias": "production", "version": "2"}
    # the fields survive the next reconciles (the engine does not know them)
    for _ in range(3):
        r.tick("2", SHA_B)
    assert r.raw["history"][0] == entry


def test_a_rollback_tags_the_candidate_with_the_rule_and_its_value() -> None:
    r = Reconciler({"enabled": True})
    r.until("1", SHA_A, lambda s: s.get("phase") == "Healthy")
    r.tick("2", SHA_B)
    fired = AnalysisSample(
        at=r.world.now,
        scraped=frozenset({"stable", "candidate"}),
        firing={"candidate": (("ModelPredictionDivergence", 4.25),)},
    )
    r.tick("2", SHA_B, fired)
    entry = r.raw["history"][0]
    assert (entry["outcome"], entry["modelURI"]) == ("RolledBack", "models:/churn/2")
    assert (entry["rule"], entry["value"]) == ("ModelPredictionDivergence", "4.25")
    assert "alias" not in entry["writeBack"]
    [item] = wb.pending(r.raw, "ml/churn", r.world.now)
    assert item.alias == "" and item.version == "2"
    assert dict(item.tags) == {
        "modeldeploy.rollout.outcome": "rolledBack",
        "modeldeploy.rollout.time": entry["finishedAt"],
        "modeldeploy.rollout.modeldeployment": "ml/churn",
        "modeldeploy.rollout.rule": "ModelPredictionDivergence",
        "modeldeploy.rollout.value": "4.25",
    }
    assert len(requests(item)) == 5


def test_off_by_default_nothing_is_pending_but_the_history_says_what_ran() -> None:
    for write_back in (None, {"enabled": False}):
        r = healthy_then_promoted(write_back)
        entry = r.raw["history"][0]
        assert entry["modelURI"] == "models:/churn/2" and "writeBack" not in entry
        assert wb.pending(r.raw, "ml/churn", r.world.now) == []


def test_done_is_never_redone_and_failed_is_retried_after_30s() -> None:
    r = healthy_then_promoted({"enabled": True})
    [item] = wb.pending(r.raw, "ml/churn", r.world.now)
    at = r.world.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    failed = {**r.raw, **wb.settled(r.raw, item.key, wb.FAILED, "unreachable", at)}
    assert failed["history"][0]["writeBack"]["state"] == "failed"
    assert wb.pending(failed, "ml/churn", r.world.now + timedelta(seconds=29)) == []
    [again] = wb.pending(failed, "ml/churn", r.world.now + timedelta(seconds=30))
    assert again == item
    done = {**failed, **wb.settled(failed, item.key, wb.DONE, item.describe(), at)}
    assert done["history"][0]["writeBack"]["message"] == (
        "models:/churn/2 tagged modeldeploy.rollout.outcome=promoted; alias production -> version 2"
    )
    assert wb.pending(done, "ml/churn", r.world.now + timedelta(hours=1)) == []
    assert wb.settled(done, ("gone", "", ""), wb.DONE, "", at) == {}


def test_only_the_newest_promotion_moves_the_alias() -> None:
    r = healthy_then_promoted({"enabled": True, "alias": "live"})
    r.tick("3", SHA_C)
    r.until("3", SHA_C, lambda s: s["history"][0].get("modelURI") == "models:/churn/3")
    older, newer = wb.pending(r.raw, "ml/churn", r.world.now)  # oldest first
    assert (older.version, older.alias) == ("2", "")
    assert (newer.version, newer.alias) == ("3", "live")


def test_the_crd_declares_write_back_with_its_defaults() -> None:
    mlflow = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    mlflow = mlflow["properties"]["model"]["properties"]["mlflow"]["properties"]["writeBack"]
    props = mlflow["properties"]
    assert props["enabled"]["default"] is False and props["alias"]["default"] == "production"
    assert wb.Settings.from_spec({}) == wb.Settings(False, "production")
    assert wb.Settings.from_spec(body("1", SHA_A, {"enabled": True})["spec"]).enabled

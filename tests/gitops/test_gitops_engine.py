"""The statuses the operator's engine writes read right in kstatus and in Argo CD.

A canary rollout is driven through the pure engine (``reconcile``) with a cluster that does
exactly what the actions ask; at every phase the status is read by kstatus and by the Argo CD
health check, which must agree with the phase.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kstatus
import pytest
from luahealth import health

from modeldeploy.operator.defaults import DEFAULT_ALERTS
from modeldeploy.operator.engine import RolloutStatus, reconcile
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import Actions, Observations, SlotObservation, Spec

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
EXPECTED = {  # phase -> (kstatus, Argo CD health)
    "Progressing": (kstatus.IN_PROGRESS, "Progressing"),
    "Paused": (kstatus.IN_PROGRESS, "Suspended"),
    "Healthy": (kstatus.CURRENT, "Healthy"),
    "Degraded": (kstatus.FAILED, "Degraded"),
}


def _body(version: str, generation: int) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "churn", "namespace": "ml", "generation": generation},
        "spec": {
            "model": {
                "name": "churn",
                "version": version,
                "sha256": "a" * 64,
                "bundleURI": f"file:///models/churn-{version}.tar.gz",
            },
            "replicas": 2,
            "server": {"image": "localhost/modeldeploy-server:dev"},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
            "analysis": {"interval": "30s", "alerts": ["ModelFeatureDrift"]},
        },
    }


def _cluster(actions: Actions) -> dict[str, SlotObservation]:
    """Every Deployment the actions ask for, fully rolled out and ready."""
    return {
        d.slot: SlotObservation(
            exists=True,
            revision=d.revision,
            replicas=d.replicas,
            ready_replicas=d.replicas,
            updated_replicas=d.replicas,
            up_to_date=True,
        )
        for d in actions.deployments
    }


class Rollout:
    """The engine plus a perfect cluster; records every status it writes."""

    def __init__(self) -> None:
        self.now = START
        self.ticks = 0
        self.status = RolloutStatus()
        self.slots: dict[str, SlotObservation] = {}
        self.seen: list[dict[str, Any]] = []

    def step(
        self,
        body: dict[str, Any],
        *,
        control: str | None = None,
        firing: tuple[tuple[str, float], ...] = (),
    ) -> dict[str, Any]:
        self.now += timedelta(seconds=31)
        self.ticks += 31
        sample = AnalysisSample(
            at=self.now,
            firing={"candidate": firing} if firing else {},
            scraped=frozenset({"stable", "candidate"}),
            rules=dict.fromkeys(DEFAULT_ALERTS, ""),
            # the server's counters: 20 predictions a second per role
            predictions={"candidate": 20.0 * self.ticks, "stable": 20.0 * self.ticks},
        )
        obs = Observations(slots=self.slots, analysis=sample, control=control)
        self.status, actions = reconcile(Spec.from_body(body), self.status, obs, self.now)
        self.slots = _cluster(actions)
        obj = {**body, "status": self.status.to_json()}
        self.seen.append(obj)
        return obj

    def until(self, body: dict[str, Any], phase: str, limit: int = 20, **kw: Any) -> dict[str, Any]:
        for _ in range(limit):
            obj = self.step(body, **kw)
            if obj["status"]["phase"] == phase:
                return obj
        raise AssertionError(f"never reached {phase}: {self.status.message}")


def _check(obj: dict[str, Any]) -> None:
    phase = obj["status"]["phase"]
    assert kstatus.well_formed(obj) == [], obj["status"]["conditions"]
    assert kstatus.compute(obj)[0] == EXPECTED[phase][0], (phase, obj["status"]["conditions"])
    assert health(obj)[0] == EXPECTED[phase][1], (phase, obj["status"]["message"])


@pytest.fixture(scope="module")
def rollout() -> Rollout:
    r = Rollout()
    v1, v2, v3 = _body("1.0.0", 1), _body("1.1.0", 2), _body("1.2.0", 3)
    r.until(v1, "Healthy")
    r.until(v2, "Paused")  # setWeight 50, then wait for promote
    r.step(v2, control="promote/1")
    r.until(v2, "Healthy")
    r.until(v3, "Progressing")
    r.until(v3, "Degraded", firing=(("ModelFeatureDrift", 0.91),))
    return r


def test_rollout_passes_every_phase(rollout: Rollout) -> None:
    phases = [o["status"]["phase"] for o in rollout.seen]
    assert set(phases) == set(EXPECTED), phases
    last = rollout.seen[-1]["status"]
    assert last["stableVersion"] == "1.1.0"
    assert last["history"][0]["version"] == "1.2.0"
    assert "ModelFeatureDrift" in last["history"][0]["message"]


def test_every_status_reads_right_in_kstatus_and_argocd(rollout: Rollout) -> None:
    for obj in rollout.seen:
        _check(obj)


def test_rollback_is_stalled_naming_the_rule(rollout: Rollout) -> None:
    obj = rollout.seen[-1]
    stalled = next(c for c in obj["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "RolledBack"
    assert "ModelFeatureDrift" in stalled["message"]
    status, message = health(obj)
    assert status == "Degraded" and "ModelFeatureDrift" in message

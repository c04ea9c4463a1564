"""The handler's side of the typed status: it parses ``.status`` once, calls the engine, and
writes the result once as a merge patch against what it read (no cluster: a fake client)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from opworld import body

from modeldeploy.operator import engine, handlers
from modeldeploy.operator.autoscaling import scale_status
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.metrics import OperatorMetrics
from modeldeploy.operator.model import Observations, Spec
from modeldeploy.operator.runtime import Config, Runtime

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class FakeKube:
    def __init__(self) -> None:
        self.status_patches: list[dict[str, Any]] = []
        self.applied: list[dict[str, Any]] = []
        self.resource_versions: list[str | None] = []

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(obj)
        return obj

    async def has_api(self, group: str, version: str, plural: str) -> bool:
        return True

    async def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        self.resource_versions.append(resource_version)
        self.status_patches.append(patch)
        return {"metadata": {"resourceVersion": str(len(self.status_patches))}}


@pytest.fixture
def rt(monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **kw: None)
    monkeypatch.setattr(handlers.kopf, "warn", lambda *a, **kw: None)
    runtime = Runtime(
        config=Config(),
        kube=FakeKube(),  # type: ignore[arg-type]
        metrics=OperatorMetrics.create(),
    )
    runtime.now = lambda: NOW  # type: ignore[method-assign]
    return runtime


def _body(status: dict[str, Any], **kw: Any) -> kopf.Body:
    raw = body(**kw)
    raw["metadata"].update(uid="u-1", resourceVersion="7")
    return kopf.Body({**raw, "status": status})


def test_one_status_write_equal_to_the_engine_json(rt: Runtime) -> None:
    asyncio.run(handlers.reconcile(rt, _body({}), None, None, trigger="test"))
    kube: FakeKube = rt.kube  # type: ignore[assignment]
    assert len(kube.status_patches) == 1
    sp = Spec.from_body(body())
    sample = AnalysisSample(
        at=NOW, error="no Prometheus: set spec.analysis.prometheusURL or --prometheus-url"
    )
    expected, _ = engine.reconcile(sp, RolloutStatus(), Observations(analysis=sample), NOW)
    # with the scale subresource's fields: no pod of the stable slot is Ready yet
    written = {**expected.to_json(), **scale_status("iris", expected.stable_slot, 0)}
    assert kube.status_patches[0] == written
    assert rt.written[("ml", "iris")] == ("1", written)


def test_unknown_keys_are_kept_and_an_unchanged_status_is_not_written(rt: Runtime) -> None:
    asyncio.run(handlers.reconcile(rt, _body({}), None, None, trigger="test"))
    kube: FakeKube = rt.kube  # type: ignore[assignment]
    written = {**kube.status_patches[0], "fromAnotherVersion": "kept"}
    rt.written.clear()
    asyncio.run(handlers.reconcile(rt, _body(written), None, None, trigger="test"))
    assert len(kube.status_patches) == 1, "the same decision writes nothing"


def test_record_outcomes_counts_a_finished_rollout_once(rt: Runtime) -> None:
    started = NOW - timedelta(seconds=90)
    entry = {
        "version": "v2",
        "revision": "r",
        "outcome": "RolledBack",
        "reason": "Aborted",
        "message": "m",
        "startedAt": "2026-02-28T23:58:30Z",
        "finishedAt": "2026-03-01T00:00:00Z",
    }
    old = RolloutStatus.from_json({})
    new = RolloutStatus.from_json({"history": [entry]})
    assert new.history[0].started_at == started
    handlers.record_outcomes(rt.metrics, old, new)
    handlers.record_outcomes(rt.metrics, new, new)
    assert rt.metrics.rollouts.labels(outcome="RolledBack")._value.get() == 1
    assert rt.metrics.time_to_rollback._sum.get() == 90.0


class ConflictingKube(FakeKube):
    """The first status write meets another writer's newer status (a 409)."""

    def __init__(self, theirs: dict[str, Any]) -> None:
        super().__init__()
        self.theirs = theirs
        self.gets = 0

    async def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        if resource_version == "7":
            self.resource_versions.append(resource_version)
            raise handlers.KubeError(409, "the object has been modified")
        return await super().patch_status(kind, namespace, name, patch, resource_version)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self.gets += 1
        return {"metadata": {"resourceVersion": "8"}, "status": self.theirs}


def test_a_conflict_rereads_and_decides_again_on_the_other_writers_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **kw: None)
    theirs = {"fromTheOtherWriter": "kept", "lastControl": "pause"}
    kube = ConflictingKube(theirs)
    rt = Runtime(
        config=Config(),
        kube=kube,
        metrics=OperatorMetrics.create(),  # type: ignore[arg-type]
    )
    rt.now = lambda: NOW  # type: ignore[method-assign]
    asyncio.run(handlers.reconcile(rt, _body({}), None, None, trigger="test"))
    assert kube.resource_versions == ["7", "8"], "every write is conditional"
    assert kube.gets == 1
    patch = kube.status_patches[-1]
    assert "fromTheOtherWriter" not in patch, "decided on their status: nothing to undo"
    assert "lastControl" not in patch
    assert rt.metrics.errors.labels(kind="conflict")._value.get() == 1


def test_a_reserved_env_name_is_an_invalid_spec_in_status_and_nothing_is_applied(
    rt: Runtime,
) -> None:
    """A spec the CRD would refuse (an older CRD, say) still never reaches a pod: the
    operator's spec-validation path says why in the status."""
    raw = _body({})
    raw["spec"]["server"]["env"] = [{"name": "MODELDEPLOY_SHA256", "value": "0" * 64}]
    asyncio.run(handlers.reconcile(rt, raw, None, None, trigger="test"))
    kube: FakeKube = rt.kube  # type: ignore[assignment]
    assert kube.applied == []
    assert kube.status_patches == [
        {
            "message": "invalid spec: spec.server.env[0].name: MODELDEPLOY_SHA256 is refused: "
            "names beginning MODELDEPLOY_ are the model server's own settings",
            "phase": "Degraded",
        }
    ]


class UrgencyKube(FakeKube):
    """Records whether each status write was made in the urgent lane."""

    def __init__(self) -> None:
        super().__init__()
        self.urgent: list[bool] = []

    async def patch_status(self, *args: Any, **kw: Any) -> dict[str, Any]:
        from modeldeploy.operator.lanes import URGENT

        self.urgent.append(URGENT.get())
        return await super().patch_status(*args, **kw)


def test_the_reconcile_an_alert_woke_writes_in_the_urgent_lane(rt: Runtime) -> None:
    kube = rt.kube = UrgencyKube()  # type: ignore[assignment]
    asyncio.run(handlers.reconcile(rt, _body({}), None, None, trigger="test"))
    rt.written.clear()
    rt.alerted.add(("ml", "iris"))
    asyncio.run(handlers.reconcile(rt, _body({}, version="v2"), None, None, trigger="wake"))
    assert kube.urgent == [False, True]
    assert ("ml", "iris") not in rt.alerted, "taken when its reconcile got the lock"


def test_rolled_back_since_is_the_end_of_a_rollout_without_its_promotion() -> None:
    entry = {"version": "v2", "revision": "r2", "outcome": "RolledBack", "reason": "Aborted"}
    running = RolloutStatus.from_json({"candidateRevision": "r2", "candidateVersion": "v2"})
    rolled = RolloutStatus.from_json({"history": [entry]})
    promoted = RolloutStatus.from_json({"history": [{**entry, "outcome": "Promoted"}]})
    assert rolled.rolled_back_since(running)
    assert not promoted.rolled_back_since(running)
    assert not rolled.rolled_back_since(rolled), "already over before"
    assert not running.rolled_back_since(running)
    assert rolled.finished_since(running) == rolled.history[0]
    assert rolled.finished_since(rolled) is None, "the same top entry is no new end"

"""The typed status and its JSON: what the engine writes reads back to the same value, and
the JSON keeps the shape the CRD's schema, the plugin and the e2e tests read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from opworld import SHA_B, World, healthy, passing, run_until, spec, tick

from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import Spec, format_time, parse_time

BG = {
    "blueGreen": {
        "autoPromotionSeconds": 20,
        "scaleDownDelaySeconds": 20,
        "prePromotionAnalysis": {"duration": "20s"},
        "postPromotionAnalysis": {"duration": "20s"},
    }
}
SHADOW = {"shadow": {"duration": "30s"}}
GATEWAY = {"gatewayAPI": {"httpRoute": "iris"}}


def _record(
    world: World, sp: Spec, status: RolloutStatus, seen: list[dict[str, Any]], done: Any, **kw: Any
) -> RolloutStatus:
    for _ in range(200):
        status, _ = tick(world, sp, status, sample=kw.pop("sample", passing(world.now)), **kw)
        seen.append(status.to_json())
        if done(status):
            return status
    raise AssertionError(status)


def _statuses(
    strategy: dict[str, Any] | None,
    provider: dict[str, Any] | None = None,
    bad: AnalysisSample | None = None,
) -> list[dict[str, Any]]:
    """Every status of a deploy, a full rollout, and a rollout that is rolled back."""
    seen: list[dict[str, Any]] = []
    world, status = World(), RolloutStatus()
    v1 = spec(strategy=strategy, provider=provider)
    status = _record(world, v1, status, seen, lambda s: s.phase == "Healthy")
    v2 = spec(version="v2", sha=SHA_B, strategy=strategy, provider=provider, generation=2)
    status = _record(
        world, v2, status, seen, lambda s: s.phase == "Healthy" and s.stable_version == "v2"
    )
    v3 = spec(version="v3", sha="c" * 64, strategy=strategy, provider=provider, generation=3)
    status = _record(world, v3, status, seen, lambda s: s.active)
    failing = bad or AnalysisSample(
        at=world.now,
        scraped=frozenset({"stable", "candidate"}),
        firing={"candidate": (("ModelFeatureDrift", 0.5),)},
    )
    failing = AnalysisSample(at=world.now, scraped=failing.scraped, firing=failing.firing)
    status = _record(world, v3, status, seen, lambda s: s.phase == "Degraded", sample=failing)
    assert status.history[0].outcome == "RolledBack"
    return seen


@pytest.mark.parametrize(
    "strategy, provider",
    [(None, None), (BG, None), (SHADOW, GATEWAY)],
    ids=["canary", "blueGreen", "shadow"],
)
def test_every_status_of_a_rollout_and_a_rollback_round_trips(
    strategy: dict[str, Any] | None, provider: dict[str, Any] | None
) -> None:
    seen = _statuses(strategy, provider)
    assert len(seen) > 5
    for raw in seen:
        assert RolloutStatus.from_json(raw).to_json() == raw
    keys = set().union(*seen)
    assert {
        "stableSlot",
        "candidateSlot",
        "stepStartedAt",
        "history",
        "analysis",
        "consecutiveErrors",
        "abortedRevision",
        "conditions",
    } <= keys
    if strategy is BG:  # canary and shadow promote and finish in one reconcile
        assert {"promoted", "previousSlot", "scaleDownAt"} <= keys


def _mutable_parts(value: Any) -> list[Any]:
    """Every object inside ``value`` that can be changed in place. Strings, numbers and
    times cannot; a frozen dataclass (a slot's ``Template``) is shared whole on purpose,
    since nothing changes it."""
    if isinstance(value, dict):
        found: list[Any] = [value]
        for k, v in value.items():
            found += _mutable_parts(k) + _mutable_parts(v)
        return found
    if isinstance(value, list):
        return [value, *(p for v in value for p in _mutable_parts(v))]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if type(value).__dataclass_params__.frozen:  # type: ignore[attr-defined]
            return []
        return [value] + [
            p for f in dataclasses.fields(value) for p in _mutable_parts(getattr(value, f.name))
        ]
    return []


@pytest.mark.parametrize("strategy", [None, BG], ids=["canary", "blueGreen"])
def test_a_copy_is_equal_and_shares_nothing_the_engine_can_change(
    strategy: dict[str, Any] | None,
) -> None:
    """The engine changes its copy of the status in place; the one it was given must not
    change with it (the copy is hand-written for speed, so a new field is checked here)."""
    for raw in _statuses(strategy):
        raw = {**raw, "someFutureKey": {"nested": [1, {"x": 2}]}}  # kept in ``extra``
        status = RolloutStatus.from_json(raw)
        copied = status.copy()
        assert copied == status
        assert copied.to_json() == status.to_json()
        originals = {id(p) for p in _mutable_parts(status)}
        shared = [p for p in _mutable_parts(copied) if id(p) in originals]
        assert not shared, shared[:3]


def test_rollback_after_promotion_round_trips() -> None:
    world, status = healthy(spec(strategy=BG))
    v2 = spec(version="v2", sha=SHA_B, strategy=BG)
    status = run_until(world, v2, status, lambda s: s.promoted)
    raw_promoted = status.to_json()
    bad = AnalysisSample(
        at=world.now,
        scraped=frozenset({"stable", "previous"}),
        firing={"stable": (("ModelHighErrorRate", 0.3),)},
    )
    status, _ = tick(world, v2, status, sample=bad)
    for raw in (raw_promoted, status.to_json()):
        assert RolloutStatus.from_json(raw).to_json() == raw


def test_empty_and_missing_status() -> None:
    assert RolloutStatus.from_json({}).to_json() == {}
    assert RolloutStatus.from_json(None) == RolloutStatus()
    assert not RolloutStatus.from_json({}).active


def test_unknown_keys_survive_and_never_become_nulls() -> None:
    _, status = healthy()
    raw = {**status.to_json(), "somethingNew": {"a": [1, 2]}, "flag": False}
    parsed = RolloutStatus.from_json(raw)
    assert parsed.to_json() == raw
    assert parsed.extra == {"somethingNew": {"a": [1, 2]}, "flag": False}
    assert None not in parsed.to_json().values()


def test_absent_keys_are_left_out_not_written_as_null() -> None:
    _, status = healthy()
    raw = status.to_json()
    for key in (
        "candidateSlot",
        "candidateVersion",
        "candidateRevision",
        "stepStartedAt",
        "promoted",
        "previousSlot",
        "scaleDownAt",
        "paused",
        "pauseStartedAt",
        "abortedRevision",
        "analysis",
        "consecutiveErrors",
        "history",
    ):
        assert key not in raw, key
    assert raw["canaryWeight"] == 0 and raw["currentStep"] == 0
    assert raw["stableSlot"] == "blue" and raw["stableServed"] is True
    assert set(raw["slots"]["blue"]) == {"model", "server", "version", "revision", "serveRole"}

    def no_nulls(value: Any) -> bool:
        if isinstance(value, dict):
            return all(v is not None and no_nulls(v) for v in value.values())
        if isinstance(value, list):
            return all(no_nulls(v) for v in value)
        return True

    for raw in _statuses(None):
        assert no_nulls(raw)


def test_times_are_typed_and_written_in_kubernetes_format() -> None:
    world, status = healthy()
    v2 = spec(version="v2", sha=SHA_B)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    assert isinstance(status.step_started_at, datetime)
    assert status.step_started_at.tzinfo is not None
    raw = status.to_json()
    assert raw["stepStartedAt"].endswith("Z") and "." not in raw["stepStartedAt"]
    assert raw["analysis"]["lastSampleAt"] == raw["stepStartedAt"]


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01 03:04:05Z",
        "2026-12-01T03:04:05+00:00",
        "2026-12-01T03:04:05.5Z",
        "2026-12-01T03:04:5Z",
        "2026-13-01T03:04:05Z",
        "2026-12-01T03:04:05",
    ],
)
def test_only_kubernetes_times_are_read(text: str) -> None:
    assert parse_time("2026-12-01T03:04:05Z") == datetime(2026, 12, 1, 3, 4, 5, tzinfo=UTC)
    assert parse_time(format_time(datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC))) == datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    with pytest.raises(ValueError):
        parse_time(text)


def test_foreign_values_are_tolerated() -> None:
    parsed = RolloutStatus.from_json(
        {
            "stableSlot": "purple",
            "currentStep": "x",
            "canaryWeight": None,
            "stepStartedAt": "2026-01-01T00:00:00.250+00:00",
            "history": ["junk", {}],
            "slots": {"blue": {"model": {}}, "red": {}},
            "conditions": [{"type": "Ready"}],
            "analysis": {"outcome": "Maybe", "results": [{"kind": "?"}]},
        }
    )
    assert parsed.stable_slot is None and parsed.current_step == 0
    assert parsed.step_started_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert len(parsed.history) == 1 and parsed.slots == {}
    assert parsed.condition("Ready") is not None
    assert parsed.analysis is not None and parsed.analysis.outcome is None
    assert parsed.analysis.results[0].kind == "check"

"""A tiny simulated world for driving the pure engine: Deployments that become ready one
tick after they are asked for, a clock, and an analysis sample per tick.

It stands in for the apiserver only in the pure engine tests; the cluster tests use the
real apiserver.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator import engine
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import Actions, Observations, SlotObservation, Spec
from modeldeploy.operator.schema.status import status_schema

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def body(
    version: str = "v1",
    sha: str = SHA_A,
    strategy: dict[str, Any] | None = None,
    replicas: int = 4,
    provider: dict[str, Any] | None = None,
    analysis: dict[str, Any] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris", "namespace": "ml", "generation": generation},
        "spec": {
            "model": {
                "name": "iris",
                "version": version,
                "bundleURI": "file:///b.tar.gz",
                "sha256": sha,
            },
            "replicas": replicas,
            "server": {"image": "modeldeploy-server:dev"},
            "strategy": strategy
            or {
                "canary": {
                    "steps": [
                        {"setWeight": 25},
                        {"pause": {"duration": "30s"}},
                        {"setWeight": 50},
                        {"analysis": {"duration": "60s"}},
                        {"setWeight": 75},
                    ]
                }
            },
            "trafficProvider": provider or {"replicas": {}},
            "analysis": analysis or {"interval": "10s"},
        },
    }


def spec(**kw: Any) -> Spec:
    return Spec.from_body(body(**kw))


LOADED = dict.fromkeys(d.DEFAULT_ALERTS, "")  # every default alert loaded and healthy
RATE = 50.0  # predictions per second each role serves in ``passing``


def passing(
    at: datetime, roles: tuple[str, ...] = ("stable", "candidate"), **kw: Any
) -> AnalysisSample:
    """All the evidence a pass needs: scraped, the alerts loaded, traffic (a counter growing
    by ``RATE`` a second); keys without a version match every version."""
    served = (at - T0).total_seconds() * RATE
    fields: dict[str, Any] = {
        "scraped": frozenset(roles),
        "rules": LOADED,
        "predictions": dict.fromkeys(roles, served),
        **kw,
    }
    return AnalysisSample(at=at, **fields)


@dataclass
class World:
    """Applies actions: a slot serves what was asked one tick later (unless broken)."""

    now: datetime = T0
    slots: dict[str, SlotObservation] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # revisions whose pods never get ready
    pending: Actions | None = None
    applied_weights: list[int] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)

    def observe(self) -> dict[str, SlotObservation]:
        if self.pending is not None:
            for dep in self.pending.deployments:
                ok = dep.revision not in self.broken
                self.slots[dep.slot] = SlotObservation(
                    exists=True,
                    revision=dep.revision,
                    replicas=dep.replicas,
                    ready_replicas=dep.replicas if ok else 0,
                    updated_replicas=dep.replicas,
                    up_to_date=True,
                    reason="" if ok else "readiness probe failed: sha256 mismatch",
                )
        return dict(self.slots)

    def apply(self, actions: Actions) -> None:
        self.pending = actions
        if not self.applied_weights or self.applied_weights[-1] != actions.weight:
            self.applied_weights.append(actions.weight)
        self.events.extend(actions.events)


def tick(
    world: World,
    sp: Spec,
    status: RolloutStatus,
    *,
    sample: AnalysisSample | None = None,
    control: str | None = None,
    dt: float = 10.0,
    write_status: bool = True,
    apply: bool = True,
) -> tuple[RolloutStatus, Actions]:
    """One reconcile: observe, decide, apply, (maybe) persist; then the clock moves.

    A persisted status goes through its JSON, as it does through the apiserver."""
    obs = Observations(slots=world.observe(), analysis=sample, control=control)
    before = copy.deepcopy(status)
    new, actions = engine.reconcile(sp, status, obs, world.now)
    assert status == before, "reconcile must not modify its input"
    if apply:
        world.apply(actions)
    world.now += timedelta(seconds=dt)
    if not write_status:
        return status, actions
    written = RolloutStatus.from_json(pruned(new.to_json(), STATUS_SCHEMA))
    assert written == new, "the status must survive its JSON and the apiserver's pruning"
    return written, actions


STATUS_SCHEMA = status_schema()


def pruned(value: Any, schema: dict[str, Any]) -> Any:
    """What the apiserver keeps of ``value``: fields the structural schema does not declare
    are dropped (as they are from every status write)."""
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        return {k: pruned(v, props[k]) for k, v in value.items() if k in props}
    if isinstance(value, list) and "items" in schema:
        return [pruned(v, schema["items"]) for v in value]
    return value


def run_until(
    world: World, sp: Spec, status: RolloutStatus, pred: Any, limit: int = 200, **kw: Any
) -> RolloutStatus:
    for _ in range(limit):
        status, _ = tick(world, sp, status, sample=passing(world.now), **kw)
        if pred(status):
            return status
    raise AssertionError(f"condition not reached; status={status}")


def healthy(sp: Spec | None = None) -> tuple[World, RolloutStatus]:
    """A world where v1 is deployed and Healthy."""
    world = World()
    sp = sp or spec()
    status = run_until(world, sp, RolloutStatus(), lambda s: s.phase == "Healthy")
    return world, status

"""Make before break: at every observation the versions that get traffic have Ready pods for
all of it, whatever the strategy, the provider, or how the rollout ends.

``SlowWorld`` is ``opworld.World`` with pods that take a tick to start: a pod asked for at
one reconcile exists at the next and is Ready only at the one after, while a pod scaled
away is gone at once (the worst case for capacity). In the instant world a scale-up is
Ready by the next look, which hides exactly the gap these tests are about.
"""

from __future__ import annotations

from typing import Any

import pytest
from opworld import SHA_B, World, passing, spec, tick

from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import SlotObservation, Spec

R = 4  # opworld's replicas
GATEWAY = {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}


class SlowWorld(World):
    def observe(self) -> dict[str, SlotObservation]:
        if self.pending is not None:
            for dep in self.pending.deployments:
                before = self.slots.get(dep.slot)
                started = 0
                if before is not None and before.revision == dep.revision:
                    started = before.replicas  # pods that existed a tick ago have started
                ok = dep.revision not in self.broken
                self.slots[dep.slot] = SlotObservation(
                    exists=True,
                    revision=dep.revision,
                    replicas=dep.replicas,
                    ready_replicas=min(dep.replicas, started) if ok else 0,
                    updated_replicas=dep.replicas,
                    up_to_date=True,
                    reason="" if ok else "readiness probe failed: sha256 mismatch",
                )
        return dict(self.slots)


def ready(world: World, slot: str | None) -> int:
    obs = world.slots.get(slot or "")
    return obs.ready_replicas if obs else 0


def check_capacity(world: World, status: RolloutStatus, sp: Spec, weight: int) -> None:
    """What the apiserver shows now can serve what the last actions route to it."""
    slots = world.slots
    if "replicas" in sp.provider:
        if sp.strategy == "canary":
            # One Service selects every slot: any Ready pod serves. Through a rollout all R
            # of them; on the way back at least one (the rejected version is kept only
            # while the stable has none).
            total = sum(o.ready_replicas for o in slots.values())
            assert total >= (R if status.active else 1), (status.to_json(), slots)
        return
    # A route: the stable stays whole, and the candidate's Ready pods take no more than
    # their share of the weight (each of the R pods of a version takes 1/R of its load).
    assert ready(world, status.stable_slot) == R, (status.to_json(), slots)
    candidate = ready(world, status.candidate_slot) if status.active else 0
    assert weight * R <= 100 * candidate, (weight, candidate, slots)


def drive(world: World, sp: Spec, status: RolloutStatus, samples: Any, ticks: int) -> RolloutStatus:
    """Reconcile ``ticks`` times, checking capacity after each; ``samples(i)`` gives the
    analysis sample of tick i (None: a passing one)."""
    for i in range(ticks):
        status, actions = tick(world, sp, status, sample=samples(i) or passing(world.now))
        world.observe()  # what the apiserver shows once these actions are applied
        world.pending = None
        check_capacity(world, status, sp, actions.weight)
    return status


def healthy_slow(sp: Spec) -> tuple[SlowWorld, RolloutStatus]:
    world, status = SlowWorld(), RolloutStatus()
    for _ in range(5):
        status, _ = tick(world, sp, status, sample=passing(world.now))
    assert status.phase == "Healthy", status.to_json()
    return world, status


def firing(world: World) -> AnalysisSample:
    return passing(world.now, firing={"candidate": (("ModelFeatureDrift", 0.9),)})


@pytest.mark.parametrize("provider", [None, GATEWAY], ids=["replicas", "gatewayAPI"])
def test_a_good_canary_never_leaves_traffic_without_ready_pods(provider: Any) -> None:
    world, status = healthy_slow(spec(provider=provider))
    v2 = spec(version="v2", sha=SHA_B, provider=provider, generation=2)
    status = drive(world, v2, status, lambda i: None, 60)
    assert status.history[0].outcome == "Promoted" and status.stable_version == "v2"


@pytest.mark.parametrize("provider", [None, GATEWAY], ids=["replicas", "gatewayAPI"])
def test_a_candidate_that_never_gets_ready_at_100_costs_no_capacity(provider: Any) -> None:
    all_in = {"canary": {"steps": [{"setWeight": 100}, {"analysis": {"duration": "60s"}}]}}
    world, status = healthy_slow(spec(strategy=all_in, provider=provider))
    v2 = spec(version="v2", sha=SHA_B, strategy=all_in, provider=provider, generation=2)
    world.broken.add(v2.template.revision)
    status, actions = tick(world, v2, status, sample=passing(world.now))
    reps = {a.slot: a.replicas for a in actions.deployments}
    assert reps == {"blue": R, "green": R}  # the stable keeps every pod
    assert actions.weight == 0  # and a route sends nothing to pods that are not Ready
    status = drive(world, v2, status, lambda i: None, 70)  # past the 600 s deadline
    assert status.history[0].reason == "ProgressDeadlineExceeded"
    assert ready(world, "blue") == R


@pytest.mark.parametrize("provider", [None, GATEWAY], ids=["replicas", "gatewayAPI"])
def test_a_rollback_from_100_keeps_the_candidate_until_the_stable_is_ready(provider: Any) -> None:
    all_in = {"canary": {"steps": [{"setWeight": 100}, {"analysis": {"duration": "60s"}}]}}
    world, status = healthy_slow(spec(strategy=all_in, provider=provider))
    v2 = spec(version="v2", sha=SHA_B, strategy=all_in, provider=provider, generation=2)
    status = drive(world, v2, status, lambda i: None, 4)
    assert status.canary_weight == 100 and status.current_step == 1
    if provider is None:
        assert ready(world, "blue") == 0 and ready(world, "green") == R  # all on the candidate
    status, actions = tick(world, v2, status, sample=firing(world))
    assert status.history[0].outcome == "RolledBack"
    reps = {a.slot: a.replicas for a in actions.deployments}
    assert reps["blue"] == R
    if provider is None:
        assert reps["green"] == R  # serves until the stable's pods are Ready
    else:
        assert reps["green"] == 0 and actions.weight == 0  # the route's stable is whole
    world.observe()
    world.pending = None
    status = drive(world, v2, status, lambda i: None, 4)
    final = tick(world, v2, status, sample=passing(world.now))[1]
    assert {a.slot: a.replicas for a in final.deployments} == {"blue": R, "green": 0}


def test_an_abort_at_50_takes_the_candidate_out_at_once() -> None:
    """The stable still has Ready pods: they take all of the traffic while the rest start,
    and the aborted version answers no more."""
    world, status = healthy_slow(spec())
    v2 = spec(version="v2", sha=SHA_B, generation=2)
    status = drive(world, v2, status, lambda i: None, 8)
    assert status.canary_weight == 50 and ready(world, "blue") == 2
    status, actions = tick(world, v2, status, control="abort")
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": R, "green": 0}
    world.observe()
    world.pending = None
    check_capacity(world, status, v2, 0)
    drive(world, v2, status, lambda i: None, 4)
    assert ready(world, "blue") == R


def test_the_stable_grows_back_when_the_candidates_pods_stop_being_ready() -> None:
    world, status = healthy_slow(spec())
    v2 = spec(version="v2", sha=SHA_B, generation=2)
    status = drive(world, v2, status, lambda i: None, 3)
    assert status.canary_weight == 25 and ready(world, "green") == 1 and ready(world, "blue") == 3
    green = world.slots["green"]
    world.slots["green"] = SlotObservation(**{**green.__dict__, "ready_replicas": 0})
    _, actions = tick(world, v2, status, sample=passing(world.now))
    assert {a.slot: a.replicas for a in actions.deployments} == {"blue": R, "green": 1}


@pytest.mark.parametrize(
    ("replicas", "provider", "weight", "share"),
    [
        (4, None, 25, 25),
        (2, None, 25, 33),  # 1 candidate pod beside 2 stable ones
        (1, None, 25, 50),
        (2, GATEWAY, 25, 25),  # a route splits requests exactly
    ],
)
def test_status_reports_the_share_the_provider_really_gives(
    replicas: int, provider: Any, weight: int, share: int
) -> None:
    steps = {"canary": {"steps": [{"setWeight": weight}, {"pause": {}}]}}
    sp = spec(strategy=steps, replicas=replicas, provider=provider)
    world, status = World(), RolloutStatus()
    for _ in range(3):
        status, _ = tick(world, sp, status, sample=passing(world.now))
    v2 = spec(version="v2", sha=SHA_B, strategy=steps, replicas=replicas, provider=provider)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    assert status.canary_weight == weight and status.traffic_share == share
    assert status.to_json()["trafficShare"] == share


def test_a_shadow_gets_no_share_of_client_traffic() -> None:
    shadow = {"shadow": {"analysis": {"duration": "60s"}}}
    sp = spec(strategy=shadow, provider=GATEWAY)
    world, status = World(), RolloutStatus()
    for _ in range(3):
        status, _ = tick(world, sp, status, sample=passing(world.now))
    v2 = spec(version="v2", sha=SHA_B, strategy=shadow, provider=GATEWAY)
    status, _ = tick(world, v2, status, sample=passing(world.now))
    status, _ = tick(world, v2, status, sample=passing(world.now))
    assert status.active and status.traffic_share == 0

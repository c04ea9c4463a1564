"""Property-based tests of the engine: invariants over random specs, samples and restarts."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opworld import SHA_B, World, body, healthy, passing, tick

from modeldeploy.operator import defaults as d
from modeldeploy.operator import engine
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.model import Analysis, SetWeight, Spec, other_slot

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def canary_steps(draw: Any) -> list[dict[str, Any]]:
    weights = sorted(draw(st.lists(st.integers(0, 100), min_size=1, max_size=5)))
    steps: list[dict[str, Any]] = []
    for w in weights:
        steps.append({"setWeight": w})
        extra = draw(st.sampled_from(["none", "pause", "analysis"]))
        if extra == "pause":
            steps.append({"pause": {"duration": f"{draw(st.integers(1, 90))}s"}})
        elif extra == "analysis":
            steps.append({"analysis": {"duration": f"{draw(st.integers(1, 90))}s"}})
    return steps


providers = st.sampled_from(
    [{"replicas": {}}, {"gatewayAPI": {"httpRoute": "r"}}, {"istio": {"virtualService": "v"}}]
)
strategies = st.one_of(
    canary_steps().map(lambda s: {"canary": {"steps": s}}),
    st.builds(
        lambda a, b: {
            "blueGreen": {
                "autoPromotionSeconds": a,
                "scaleDownDelaySeconds": b,
                "prePromotionAnalysis": {"duration": "20s"},
            }
        },
        st.integers(0, 60),
        st.integers(0, 60),
    ),
)
# What Prometheus says at a tick: passing, unreachable, no candidate metrics, no traffic
# (the counters stand still), or a named alert that is not loaded.
samples = st.sampled_from(["pass", "error", "nodata", "notraffic", "unloaded"])
NO_EVIDENCE = ("error", "nodata", "notraffic", "unloaded")


def make_sample(kind: str, world: World) -> AnalysisSample:
    if kind == "pass":
        return passing(world.now)
    if kind == "error":
        return AnalysisSample(at=world.now, error="connection refused")
    idle = {"stable": 5.0, "candidate": 5.0}  # the counters stand still
    if kind == "notraffic":
        return passing(world.now, predictions=idle)
    if kind == "unloaded":
        loaded = {n: "" for n in d.DEFAULT_ALERTS if n != d.ALERT_DIVERGENCE}
        return passing(world.now, rules=loaded, predictions=idle)
    return AnalysisSample(at=world.now, scraped=frozenset({"stable"}))


def v2_of(strategy: dict[str, Any], provider: dict[str, Any], replicas: int) -> tuple[Spec, Spec]:
    analysis = {"interval": "10s", "consecutiveErrorLimit": 1000}
    v1 = Spec.from_body(
        body(strategy=strategy, provider=provider, replicas=replicas, analysis=analysis)
    )
    v2 = Spec.from_body(
        body(
            version="v2",
            sha=SHA_B,
            strategy=strategy,
            provider=provider,
            replicas=replicas,
            analysis=analysis,
        )
    )
    return v1, v2


@SETTINGS
@given(
    strategy=strategies,
    provider=providers,
    replicas=st.integers(1, 10),
    kinds=st.lists(samples, min_size=1, max_size=60),
)
def test_weight_never_exceeds_the_current_step_and_inconclusive_never_promotes(
    strategy: dict[str, Any], provider: dict[str, Any], replicas: int, kinds: list[str]
) -> None:
    v1, v2 = v2_of(strategy, provider, replicas)
    world, status = healthy(v1)
    plan = engine.plan(v2)
    for kind in kinds:
        before_outcome = status.analysis.outcome if status.analysis else None
        was_promoted = status.stable_version == "v2"
        status, actions = tick(world, v2, status, sample=make_sample(kind, world))
        # the weight applied is at most the weight of the step the rollout is at
        if status.active and not status.promoted:
            allowed = max(
                [0]
                + [s.weight for s in plan[: status.current_step + 1] if isinstance(s, SetWeight)]
            )
            assert actions.weight <= allowed
            assert status.canary_weight <= allowed
        promoted_now = status.stable_version == "v2" and not was_promoted
        if promoted_now:
            # promotion happened on a Passed sample taken at this tick or before
            assert status.analysis is not None
            assert status.analysis.outcome == "Passed" or before_outcome == "Passed"
            # (no traffic passes the alerts; only an analysis step asks for minSamples)
            assert kind in ("pass", "notraffic") or before_outcome == "Passed"
        assert 0 <= actions.weight <= 100
        total = sum(a.replicas for a in actions.deployments)
        assert total <= 2 * replicas


@SETTINGS
@given(
    strategy=strategies,
    provider=providers,
    replicas=st.integers(1, 6),
    always_inconclusive=st.sampled_from(["error", "nodata", "unloaded"]),
)
def test_never_promotes_while_analysis_is_inconclusive(
    strategy: dict[str, Any], provider: dict[str, Any], replicas: int, always_inconclusive: str
) -> None:
    v1, v2 = v2_of(strategy, provider, replicas)
    world, status = healthy(v1)
    for _ in range(80):
        status, _ = tick(world, v2, status, sample=make_sample(always_inconclusive, world), dt=30)
    assert status.stable_version == "v1"


@SETTINGS
@given(
    strategy=strategies,
    provider=providers,
    replicas=st.integers(1, 6),
    kinds=st.lists(st.sampled_from(NO_EVIDENCE), min_size=1, max_size=60),
    insufficient=st.sampled_from(["pause", "rollback"]),
)
def test_never_promotes_past_an_analysis_step_without_evidence(
    strategy: dict[str, Any],
    provider: dict[str, Any],
    replicas: int,
    kinds: list[str],
    insufficient: str,
) -> None:
    """Evidence or no promotion: without the minSamples predictions (or a loaded alert, or
    metrics, or Prometheus), a plan with an analysis step never promotes, whatever the mix."""
    v1, v2 = v2_of(strategy, provider, replicas)
    v2 = Spec.from_body(
        {
            **body(version="v2", sha=SHA_B, strategy=strategy, provider=provider),
            "spec": {
                **body(version="v2", sha=SHA_B, strategy=strategy, provider=provider)["spec"],
                "replicas": replicas,
                "analysis": {
                    "interval": "10s",
                    "consecutiveErrorLimit": 1000,
                    "onInsufficientEvidence": insufficient,
                },
            },
        }
    )
    world, status = healthy(v1)
    # Without an analysis step only the alerts gate: no traffic passes them.
    gated = any(isinstance(s, Analysis) for s in engine.plan(v2)) or "notraffic" not in kinds
    for kind in kinds * 3:
        status, _ = tick(world, v2, status, sample=make_sample(kind, world), dt=20)
        if gated:
            assert not (status.promoted or status.stable_version == "v2"), kind


def _drive(
    v1: Spec, v2: Spec, crashes: set[int], lost_apply: set[int]
) -> tuple[RolloutStatus, World]:
    """Roll v2 out; at tick i in ``crashes`` the status write is lost (operator killed after
    applying), at tick i in ``lost_apply`` it is killed before applying anything."""
    world, status = healthy(v1)
    for i in range(400):
        crashed = i in crashes
        lost = i in lost_apply
        status, _ = tick(
            world,
            v2,
            status,
            sample=passing(world.now),
            write_status=not crashed and not lost,
            apply=not lost,
        )
        if status.phase == "Healthy" and status.stable_version == "v2":
            break
    return status, world


@SETTINGS
@given(
    strategy=strategies,
    provider=providers,
    replicas=st.integers(1, 6),
    crashes=st.sets(st.integers(0, 60), max_size=15),
    lost=st.sets(st.integers(0, 60), max_size=15),
)
def test_any_interleaving_of_restarts_gives_the_same_final_state(
    strategy: dict[str, Any],
    provider: dict[str, Any],
    replicas: int,
    crashes: set[int],
    lost: set[int],
) -> None:
    v1, v2 = v2_of(strategy, provider, replicas)
    ref, ref_world = _drive(v1, v2, set(), set())
    got, world = _drive(v1, v2, crashes, lost)

    def pointer(s: RolloutStatus) -> tuple[object, ...]:
        return (
            s.phase,
            s.stable_slot,
            s.stable_version,
            s.stable_revision,
            s.canary_weight,
            s.current_step,
            s.observed_generation,
        )

    assert pointer(got) == pointer(ref)
    assert [(h.version, h.outcome) for h in got.history] == [
        (h.version, h.outcome) for h in ref.history
    ]
    # every weight change happened, in order, once
    assert world.applied_weights == ref_world.applied_weights


all_strategies = st.one_of(
    strategies,
    st.builds(
        lambda dur, auto: {"shadow": {"duration": f"{dur}s", "autoPromote": auto}},
        st.integers(1, 90),
        st.booleans(),
    ),
)
controls = st.sampled_from(
    [None, None, None, "pause", "resume", "promote", "promote-full", "abort", "retry"]
)


def check_invariants(status: RolloutStatus, actions: Any, plan: list[Any]) -> None:
    """What every status the engine writes satisfies, whatever led to it."""
    assert status.phase in d.PHASES and status.stable_slot is not None
    assert 0 <= status.canary_weight <= 100 and 0 <= actions.weight <= 100
    assert len(status.history) <= d.HISTORY_LIMIT
    if status.paused:
        assert status.pause_started_at is not None
    if status.active:
        assert status.candidate_slot is not None and status.current_step < len(plan)
        assert status.aborted_revision != status.candidate_revision
        assert status.step_started_at is not None and status.analysis is not None
        if status.promoted:  # the pointer moved; the previous slot still runs
            assert status.candidate_slot == status.stable_slot
            assert status.previous_slot == other_slot(status.stable_slot)
            assert actions.candidate_slot is None and actions.weight == 0
            assert actions.pod_roles[status.previous_slot] == d.ROLE_PREVIOUS
        else:
            assert status.candidate_slot == other_slot(status.stable_slot)
            assert status.previous_slot is None
            assert actions.candidate_slot == status.candidate_slot
    else:
        assert status.candidate_slot is None and status.previous_slot is None
        assert not status.promoted and status.step_started_at is None
        assert status.canary_weight == 0 and status.current_step == 0
        assert actions.candidate_slot is None and actions.weight == 0
    assert actions.mirror == (status.strategy == "shadow" and actions.candidate_slot is not None)
    assert actions.stable_slot == status.stable_slot
    assert actions.pod_roles[status.stable_slot] == d.ROLE_STABLE
    assert {a.slot for a in actions.deployments} == set(status.slots)
    ready = status.condition("Ready")
    assert ready is not None and (ready.status == "True") == (status.phase == "Healthy")
    stalled = status.condition("Stalled")
    assert stalled is not None and (stalled.status == "True") == (status.phase == "Degraded")


@SETTINGS
@given(
    strategy=all_strategies,
    provider=providers,
    replicas=st.integers(1, 6),
    script=st.lists(
        st.tuples(samples, controls, st.sampled_from([5, 10, 30, 700])), min_size=1, max_size=40
    ),
)
def test_every_status_satisfies_the_invariants_whatever_the_controls(
    strategy: dict[str, Any],
    provider: dict[str, Any],
    replicas: int,
    script: list[tuple[str, str | None, int]],
) -> None:
    v1, v2 = v2_of(strategy, provider, replicas)
    world, status = healthy(v1)
    plan = engine.plan(v2)
    for i, (kind, control, dt) in enumerate(script):
        status, actions = tick(
            world,
            v2,
            status,
            sample=make_sample(kind, world),
            control=f"{control}/{i}" if control else None,
            dt=dt,
        )
        check_invariants(status, actions, plan)

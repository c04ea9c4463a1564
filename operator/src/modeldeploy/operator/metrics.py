"""The operator's own Prometheus metrics (a registry per operator, never the global one)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.model import Event


@dataclass
class OperatorMetrics:
    registry: CollectorRegistry
    reconciles: Counter
    errors: Counter
    rollouts: Counter
    time_to_rollback: Histogram
    rollout_duration: Histogram
    analysis_polls: Counter
    prometheus_requests: Counter
    analysis_poll_seconds: Histogram
    phase: Gauge
    analysis_tick_lag: Histogram
    retrain_runs: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> OperatorMetrics:
        reg = registry or CollectorRegistry()
        return cls(
            registry=reg,
            reconciles=Counter(
                "modeldeploy_operator_reconciles", "Reconciles run.", ["trigger"], registry=reg
            ),
            errors=Counter(
                "modeldeploy_operator_reconcile_errors",
                "Reconciles that failed (and will be retried).",
                ["kind"],
                registry=reg,
            ),
            rollouts=Counter(
                "modeldeploy_operator_rollouts",
                "Finished rollouts by outcome.",
                ["outcome"],
                registry=reg,
            ),
            time_to_rollback=Histogram(
                "modeldeploy_operator_time_to_rollback_seconds",
                "From the start of a rollout to its rollback.",
                registry=reg,
                buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            ),
            rollout_duration=Histogram(
                "modeldeploy_operator_rollout_duration_seconds",
                "From the start of a rollout to its promotion.",
                registry=reg,
                buckets=(30, 60, 120, 300, 600, 1800, 3600, 7200),
            ),
            analysis_polls=Counter(
                "modeldeploy_operator_analysis_polls",
                "Batched Prometheus polls by outcome.",
                ["outcome"],
                registry=reg,
            ),
            prometheus_requests=Counter(
                "modeldeploy_operator_prometheus_requests",
                "Requests to Prometheus's HTTP API by path (constant per poll, whatever N).",
                ["path"],
                registry=reg,
            ),
            retrain_runs=Counter(
                "modeldeploy_operator_retrain_runs",
                "Retraining runs (spec.retrain) started, and ended by outcome.",
                ["outcome"],
                registry=reg,
            ),
            analysis_poll_seconds=Histogram(
                "modeldeploy_operator_analysis_poll_seconds",
                "Duration of one batched Prometheus poll.",
                registry=reg,
            ),
            phase=Gauge(
                "modeldeploy_operator_modeldeployments",
                "ModelDeployments by phase.",
                ["phase"],
                registry=reg,
            ),
            analysis_tick_lag=Histogram(
                "modeldeploy_operator_analysis_tick_lag_seconds",
                "From when a ModelDeployment's next analysis sample was due (the previous one"
                " plus the interval, and not before the snapshot it reads) to its judgement.",
                registry=reg,
                buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60),
            ),
        )

    def observe_tick(
        self,
        before: datetime | None,
        after: datetime | None,
        sampled_at: datetime | None,
        interval: float,
        now: datetime,
    ) -> None:
        """Observe the lag of one analysis tick: a sample was judged (``after`` is new) that
        was due at ``before + interval``, or when its snapshot was taken if that is later.
        The first sample of an analysis has no due time and is not observed."""
        if before is None or after is None or after == before or sampled_at is None:
            return
        due = max(before.timestamp() + interval, sampled_at.timestamp())
        self.analysis_tick_lag.observe(max(0.0, now.timestamp() - due))


# The retraining Events that start or end a run, and the outcome each counts as.
RETRAIN_OUTCOMES = {
    "RetrainStarted": "started",
    "RetrainPromoted": "promoted",
    "RetrainFailed": "failed",
    "GateFailed": "rejected",
}


def record_retrain(metrics: OperatorMetrics, events: Iterable[Event]) -> None:
    """Count the retraining runs that started or ended in one reconcile (from its Events,
    which the state machine posts exactly once per run and outcome)."""
    for event in events:
        outcome = RETRAIN_OUTCOMES.get(event.reason)
        if outcome is not None:
            metrics.retrain_runs.labels(outcome=outcome).inc()


def record_outcomes(metrics: OperatorMetrics, old: RolloutStatus, new: RolloutStatus) -> None:
    """Count a rollout when it ends (a new history entry) and observe how long it took."""
    if (top := new.finished_since(old)) is None:
        return
    metrics.rollouts.labels(outcome=top.outcome).inc()
    if top.started_at and top.finished_at:
        seconds = (top.finished_at - top.started_at).total_seconds()
        if top.outcome in ("RolledBack", "Aborted"):
            metrics.time_to_rollback.observe(seconds)
        elif top.outcome == "Promoted":
            metrics.rollout_duration.observe(seconds)

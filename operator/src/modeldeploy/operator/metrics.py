"""The operator's own Prometheus metrics (a registry per operator, never the global one)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class OperatorMetrics:
    registry: CollectorRegistry
    reconciles: Counter
    errors: Counter
    rollouts: Counter
    time_to_rollback: Histogram
    rollout_duration: Histogram
    analysis_polls: Counter
    analysis_poll_seconds: Histogram
    phase: Gauge

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
        )

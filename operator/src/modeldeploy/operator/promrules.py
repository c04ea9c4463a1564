"""The PrometheusRule a ModelDeployment owns: its own thresholds on the chart's series.

The chart's rule file records PSI, prediction divergence, error ratio, latency and live
performance per (namespace, modeldeployment, role) and alerts at its default thresholds. A
ModelDeployment's ``analysis.thresholds`` add alerts of the same names restricted to it, so
the alerts ``analysis.alerts`` names (the four defaults, and the opt-in
``ModelLivePerformanceDrop`` and ``ModelConceptDrift``) watch both. Both come from one definition,
``modeldeploy.server.contract.rules``. Only created when the Prometheus Operator's CRDs exist.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator.model import Json, Spec
from modeldeploy.operator.owned import Owner, metadata
from modeldeploy.server.contract import rules

# (group, version, plural): the rule is only applied when the cluster serves it.
PROMETHEUS_RULE_API = ("monitoring.coreos.com", "v1", "prometheusrules")
# Marks the alerts of a ModelDeployment's own rule (the chart's carry no such label).
LABEL_THRESHOLDS = "modeldeploy_thresholds"


def thresholds(spec: Spec) -> rules.Thresholds:
    """``spec.analysis.thresholds`` with the defaults the CRD publishes."""
    t: dict[str, Any] = spec.analysis.thresholds
    return rules.Thresholds(
        drift_psi=float(t.get("driftPSI", d.THRESHOLD_DRIFT_PSI)),
        divergence_std_errors=float(
            t.get("divergenceStdErrors", d.THRESHOLD_DIVERGENCE_STD_ERRORS)
        ),
        error_rate=float(t.get("errorRate", d.THRESHOLD_ERROR_RATE)),
        latency_p99_seconds=float(t.get("latencyP99Seconds", d.THRESHOLD_LATENCY_P99_SECONDS)),
        live_accuracy_drop=float(t.get("liveAccuracyDrop", d.THRESHOLD_LIVE_ACCURACY_DROP)),
        live_error_rise=float(t.get("liveErrorRise", d.THRESHOLD_LIVE_ERROR_RISE)),
    )


def rule_groups(owner: Owner, spec: Spec) -> list[Json]:
    """Rule groups (the same shape in a PrometheusRule and in a plain rule file)."""
    hold = str(spec.analysis.thresholds.get("for", d.THRESHOLD_FOR))
    groups = rules.modeldeployment_groups(
        owner.namespace,
        owner.name,
        thresholds(spec),
        hold=hold,
        labels={LABEL_THRESHOLDS: owner.name},
    )
    return [g.as_dict() for g in groups]


def prometheus_rule(owner: Owner, spec: Spec) -> Json:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(owner, f"{owner.name}-modeldeploy", "alerts"),
        "spec": {"groups": rule_groups(owner, spec)},
    }

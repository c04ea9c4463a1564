"""The PrometheusRule a ModelDeployment owns: its own thresholds on the chart's series.

The chart's rule file records PSI, prediction divergence, error ratio and latency per
(namespace, modeldeployment, role) and alerts at its default thresholds. A ModelDeployment's
``analysis.thresholds`` add alerts of the same names restricted to it, so the operator's
default ``analysis.alerts`` watch both. Only created when the Prometheus Operator's CRDs exist.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator.model import Json, Spec
from modeldeploy.operator.owned import Owner, metadata

# (group, version, plural): the rule is only applied when the cluster serves it.
PROMETHEUS_RULE_API = ("monitoring.coreos.com", "v1", "prometheusrules")


def _sel(owner: Owner, extra: str = "") -> str:
    return f'{{namespace="{owner.namespace}", modeldeployment="{owner.name}"{extra}}}'


def rule_groups(owner: Owner, spec: Spec) -> list[Json]:
    """Rule groups (the same shape in a PrometheusRule and in a plain rule file)."""
    t: dict[str, Any] = spec.analysis.thresholds
    psi = float(t.get("driftPSI", d.THRESHOLD_DRIFT_PSI))
    zscore = float(t.get("divergenceStdErrors", d.THRESHOLD_DIVERGENCE_STD_ERRORS))
    errors = float(t.get("errorRate", d.THRESHOLD_ERROR_RATE))
    latency = float(t.get("latencyP99Seconds", d.THRESHOLD_LATENCY_P99_SECONDS))
    hold = str(t.get("for", d.THRESHOLD_FOR))
    s = _sel(owner)
    cand = _sel(owner, ', role="candidate"')
    labels = {"severity": "warning", "modeldeploy_thresholds": owner.name}
    on_md = "on (namespace, modeldeployment, role)"
    rules = [
        {"alert": d.ALERT_DRIFT,
         "expr": f"modeldeploy:feature_psi:1m{s} > {psi:g} and on (namespace, modeldeployment,"
                 f" role, feature) modeldeploy:feature_observations:increase1m{s} >= 100",
         "for": hold, "labels": labels,
         "annotations": {"summary": f"Input drift on {{{{ $labels.feature }}}} of "
                                    f"{owner.namespace}/{owner.name} ({{{{ $labels.role }}}})",
                         "description": f"PSI {{{{ $value }}}} exceeds {psi:g}."}},
        {"alert": d.ALERT_DIVERGENCE,
         "expr": f"abs(modeldeploy:prediction_divergence_zscore:1m{s}) > {zscore:g} "
                 f"and {on_md} modeldeploy:predictions:increase1m{cand} >= 30",
         "for": hold, "labels": labels,
         "annotations": {"summary": f"Candidate of {owner.namespace}/{owner.name} diverges",
                         "description": f"{{{{ $value }}}} standard errors (threshold "
                                        f"{zscore:g})."}},
        {"alert": d.ALERT_ERROR_RATE,
         "expr": f"modeldeploy:request_server_errors:ratio_rate1m{s} > {errors:g} "
                 f"and {on_md} modeldeploy:requests:rate1m{s} * 60 >= 10",
         "for": hold, "labels": {**labels, "severity": "critical"},
         "annotations": {"summary": f"Server errors of {owner.namespace}/{owner.name}",
                         "description": f"error ratio {{{{ $value }}}} above {errors:g}."}},
        {"alert": d.ALERT_LATENCY,
         "expr": f"modeldeploy:request_duration_seconds:p99_1m{s} > {latency:g} "
                 f"and {on_md} modeldeploy:requests:rate1m{s} * 60 >= 10",
         "for": hold, "labels": labels,
         "annotations": {"summary": f"Slow answers from {owner.namespace}/{owner.name}",
                         "description": f"p99 {{{{ $value }}}}s above {latency:g}s."}},
    ]
    return [{"name": f"modeldeploy.{owner.namespace}.{owner.name}", "interval": "15s",
             "rules": rules}]


def prometheus_rule(owner: Owner, spec: Spec) -> Json:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": metadata(owner, f"{owner.name}-modeldeploy", "alerts"),
            "spec": {"groups": rule_groups(owner, spec)}}

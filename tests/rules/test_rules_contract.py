"""The rule file is valid and speaks only the server's published contract.

Metric and label names are read out of every expression with a small PromQL tokenizer and
checked against ``modeldeploy.server.contract`` plus the labels the scrape configuration adds.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import promsim as ps
from promql_names import (
    ALERTS,
    CHART_ALERTS,
    FUNCTIONS,
    OPT_IN_ALERTS,
    TARGET_LABELS,
    contract_labels,
    contract_metrics,
    rules,
    tokens,
)

from modeldeploy.server import contract


def test_promtool_check_rules_passes() -> None:
    proc = subprocess.run(
        [ps.promtool_path(), "check", "rules", str(ps.RULES_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


def test_tokenizer_reads_names() -> None:
    metrics, labels, functions = tokens(
        'sum by (namespace, le) (rate(foo_total{outcome="a{b}", role=~"x"}[1m])) '
        "/ on (pod) group_left () bar:baz:1m > 1e-4"
    )
    assert metrics == {"foo_total", "bar:baz:1m"}
    assert labels == {"namespace", "le", "outcome", "role", "pod"}
    assert functions == {"sum", "rate"}


def test_rules_use_only_contract_metrics_and_labels() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    allowed_metrics = contract_metrics() | recorded
    allowed_labels = contract_labels() | TARGET_LABELS
    used_raw: set[str] = set()
    for rule in rules():
        metrics, labels, functions = tokens(rule["expr"])
        name = rule.get("record") or rule.get("alert")
        assert metrics <= allowed_metrics, f"{name}: unknown metrics {metrics - allowed_metrics}"
        assert labels <= allowed_labels, f"{name}: unknown labels {labels - allowed_labels}"
        assert functions <= FUNCTIONS, f"{name}: unexpected functions {functions - FUNCTIONS}"
        used_raw |= metrics - recorded
    # The rules read what gates a rollout: bins and references, predictions (and their
    # classes), requests; and the regressors' live error.
    assert {
        contract.METRIC_PREDICTION_CLASS,
        contract.METRIC_FEEDBACK_ABS_ERROR,
        contract.METRIC_FEEDBACK_SQUARED_ERROR,
        contract.METRIC_FEEDBACK_ROWS,
        contract.METRIC_FEATURE_BIN,
        contract.METRIC_FEATURE_REFERENCE_FRACTION,
        contract.METRIC_PREDICTIONS,
        contract.METRIC_PREDICTION_SUM,
        contract.METRIC_PREDICTION_SUM_SQUARES,
        contract.METRIC_REQUESTS,
        contract.METRIC_REQUEST_DURATION + "_bucket",
    } <= used_raw


def test_recorded_names_follow_level_metric_operation() -> None:
    for rule in rules():
        if "record" in rule:
            level, metric, *ops = rule["record"].split(":")
            assert level == "modeldeploy" and metric and len(ops) <= 1, rule["record"]


def test_alerts_carry_the_labels_the_operator_matches() -> None:
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    assert set(alerts) == CHART_ALERTS
    for name, rule in alerts.items():
        # Every alert's expression starts from a series aggregated by exactly these labels.
        first_metric = re.match(r"[\s(]*(?:(?:abs|label_replace)\(\s*)*([a-z_:0-9]+)", rule["expr"])
        assert first_metric, name
        source = next(r for r in rules() if r.get("record") == first_metric.group(1))
        _, labels, _ = tokens(source["expr"])
        assert {"namespace", "modeldeployment", "role"} <= labels | _inherited(source), name
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert "summary" in rule["annotations"] and "description" in rule["annotations"]


def test_alert_names_are_the_operators_defaults() -> None:
    """The operator watches these names unless a ModelDeployment lists its own."""
    from modeldeploy.operator import defaults

    assert set(defaults.DEFAULT_ALERTS) == ALERTS
    # The alerts on /feedback labels are loaded, but opt-in.
    assert set(defaults.OPT_IN_ALERTS) == OPT_IN_ALERTS
    assert not OPT_IN_ALERTS & set(defaults.DEFAULT_ALERTS)
    drift = next(r for r in rules() if r.get("alert") == defaults.ALERT_DRIFT)
    assert f"> {defaults.THRESHOLD_DRIFT_PSI:g}" in drift["expr"]
    divergence = next(r for r in rules() if r.get("alert") == defaults.ALERT_DIVERGENCE)
    assert f"> {defaults.THRESHOLD_DIVERGENCE_STD_ERRORS:g}" in divergence["expr"]


def _inherited(rule: dict[str, Any]) -> set[str]:
    """Labels a recorded series keeps from the recorded series it is computed from."""
    metrics, labels, _ = tokens(rule["expr"])
    out = set(labels)
    for r in rules():
        if r.get("record") in metrics:
            out |= _inherited(r)
    return out

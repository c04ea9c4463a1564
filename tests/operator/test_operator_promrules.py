"""A ModelDeployment's PrometheusRule is the chart's alerts with its selector and thresholds:
both come from ``modeldeploy.server.contract.rules``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from opworld import spec

from modeldeploy.operator import defaults as d
from modeldeploy.operator import promrules
from modeldeploy.operator.builders import Owner
from modeldeploy.server.contract import rules

ROOT = Path(__file__).resolve().parents[2]
CHART_RULES = ROOT / "charts" / "modeldeploy" / "rules" / "modeldeploy-rules.yaml"
OWNER = Owner(name="iris", namespace="ml", uid="1234")
SELECTOR = 'namespace="ml", modeldeployment="iris"'


def _chart_alerts() -> dict[str, dict[str, Any]]:
    """The alerts of the committed chart file, as Prometheus reads them."""
    doc = yaml.safe_load(CHART_RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _md_alerts(thresholds: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    sp = spec(analysis={"thresholds": thresholds} if thresholds else None)
    groups = promrules.rule_groups(OWNER, sp)
    assert len(groups) == 1
    return {r["alert"]: r for r in groups[0]["rules"]}


def _without_selector(expr: str) -> str:
    return expr.replace("{" + SELECTOR + ", ", "{").replace("{" + SELECTOR + "}", "")


def test_every_alert_of_a_modeldeployment_is_the_charts_with_its_selector() -> None:
    chart, md = _chart_alerts(), _md_alerts()
    assert list(md) == list(chart) == [*d.DEFAULT_ALERTS, *d.OPT_IN_ALERTS]
    for name, alert in md.items():
        # Every series the alert reads is restricted to this ModelDeployment.
        assert alert["expr"].count("modeldeploy:") == alert["expr"].count(SELECTOR), name
        assert _without_selector(alert["expr"]) == chart[name]["expr"], name
        assert alert["labels"] == {
            **chart[name]["labels"],
            promrules.LABEL_THRESHOLDS: OWNER.name,
        }, name
        assert alert["annotations"] == chart[name]["annotations"], name
        assert alert["for"] == d.THRESHOLD_FOR


def test_every_alert_of_a_modeldeployment_takes_its_thresholds() -> None:
    chart = _chart_alerts()
    md = _md_alerts(
        {
            "driftPSI": 0.1,
            "divergenceStdErrors": 3,
            "errorRate": 0.02,
            "latencyP99Seconds": 0.5,
            "liveAccuracyDrop": 0.02,
            "liveErrorRise": 0.25,
            "for": "1m",
        }
    )
    # (chart text, ModelDeployment text, times in the expression) and in the description.
    # Divergence compares both of its tests' z-scores with the one threshold.
    swaps = {
        d.ALERT_DRIFT: [("> 0.25 ", "> 0.1 ", 1), ("exceeds 0.25.", "exceeds 0.1.")],
        d.ALERT_DIVERGENCE: [("> 4,", "> 3,", 2), ("(threshold 4)", "(threshold 3)")],
        d.ALERT_ERROR_RATE: [("> 0.05 ", "> 0.02 ", 1), ("(threshold 5%)", "(threshold 2%)")],
        d.ALERT_LATENCY: [("> 1 ", "> 0.5 ", 1), ("exceeds 1s.", "exceeds 0.5s.")],
        # Both margins of the one alert, each in its test and its half of the description.
        d.ALERT_LIVE_PERFORMANCE: [
            ("> 0.05\n", "> 0.02\n", 1),
            ("> 0.1\n", "> 0.25\n", 1),
            ("(margin 0.05)", "(margin 0.02)"),
            ("(margin 10%)", "(margin 25%)"),
        ],
        # No threshold: the same alert, with the ModelDeployment's `for`.
        d.ALERT_CONCEPT_DRIFT: [],
    }
    for name, alert in md.items():
        expr, description = chart[name]["expr"], chart[name]["annotations"]["description"]
        for swap in swaps[name]:
            if len(swap) == 3:
                expr_old, expr_new, times = swap
                assert expr.count(expr_old) == times, name
                expr = expr.replace(expr_old, expr_new)
            else:
                text_old, text_new = swap
                assert text_old in description, name
                description = description.replace(text_old, text_new)
        assert _without_selector(alert["expr"]) == expr, name
        assert alert["annotations"] == {**chart[name]["annotations"], "description": description}
        assert alert["for"] == "1m"


def test_divergence_of_a_modeldeployment_needs_30_stable_predictions() -> None:
    """The guard the per-ModelDeployment alert once lacked."""
    expr = _md_alerts()[d.ALERT_DIVERGENCE]["expr"]
    assert (
        f'modeldeploy:predictions:increase1m{{{SELECTOR}, role="stable"}} '
        f">= {rules.MIN_PREDICTIONS}"
    ) in expr
    assert f'modeldeploy:predictions:increase1m{{{SELECTOR}, role="candidate"}}' in expr


def test_operator_defaults_are_the_contracts() -> None:
    assert promrules.thresholds(spec()) == rules.DEFAULT_THRESHOLDS
    assert (
        d.THRESHOLD_DRIFT_PSI,
        d.THRESHOLD_DIVERGENCE_STD_ERRORS,
        d.THRESHOLD_ERROR_RATE,
        d.THRESHOLD_LATENCY_P99_SECONDS,
        d.THRESHOLD_LIVE_ACCURACY_DROP,
        d.THRESHOLD_LIVE_ERROR_RISE,
    ) == (0.25, 4.0, 0.05, 1.0, 0.05, 0.1)
    assert d.THRESHOLD_FOR == rules.DEFAULT_FOR == "30s"
    assert d.DEFAULT_ALERTS == rules.ALERTS


def test_thresholds_print_as_promql_numbers() -> None:
    assert [rules.number(x) for x in (0.25, 2.0, 1, 1e-5, 0.1234567891)] == [
        "0.25",
        "2",
        "1",
        "1e-05",
        "0.1234567891",
    ]


def test_selector_values_are_quoted() -> None:
    assert rules.series("m", {"a": 'x"y\\z'}) == 'm{a="x\\"y\\\\z"}'
    assert rules.series("m") == "m"


def test_divergence_of_a_modeldeployment_reads_both_tests_of_its_own_series() -> None:
    """The mean and the class test, each on this ModelDeployment's series only, and no
    recording rule of its own (the chart records the class counts and their chi-square)."""
    groups = promrules.rule_groups(OWNER, spec())
    assert all("alert" in r for g in groups for r in g["rules"])
    expr = _md_alerts()[d.ALERT_DIVERGENCE]["expr"]
    assert f"abs({rules.PREDICTION_DIVERGENCE_ZSCORE}{{{SELECTOR}}}) > 4," in expr
    assert f"{rules.PREDICTION_CLASS_ZSCORE}{{{SELECTOR}}} > 4," in expr
    for test in (rules.TEST_MEAN, rules.TEST_CLASSES):
        assert f'"{rules.LABEL_TEST}", "{test}", "", ""' in expr, test
    chart_records = {
        r["record"]
        for g in yaml.safe_load(CHART_RULES.read_text())["groups"]
        for r in g["rules"]
        if "record" in r
    }
    assert rules.PREDICTION_CLASS_ZSCORE in chart_records
    assert {rules.FEEDBACK_MAE, rules.FEEDBACK_RMSE} <= chart_records

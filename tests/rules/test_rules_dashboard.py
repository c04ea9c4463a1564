"""The Grafana dashboard queries only what the rules record and the server exports."""

from __future__ import annotations

import json
from typing import Any

import promsim as ps
from prometheus_client import CollectorRegistry
from promql_names import (
    CHART_ALERTS,
    FUNCTIONS,
    TARGET_LABELS,
    contract_labels,
    contract_metrics,
    rules,
    tokens,
)

from modeldeploy.operator.metrics import OperatorMetrics

DASHBOARD = ps.ROOT / "charts" / "modeldeploy" / "dashboards" / "modeldeploy.json"
# Prometheus' own series of alert states, and the labels it carries.
BUILTIN_METRICS = {"ALERTS"}
BUILTIN_LABELS = {"alertname", "alertstate"}


def _operator_metrics() -> set[str]:
    """Series names of the operator's own metrics, from a fresh registry."""
    names: set[str] = set()
    for family in OperatorMetrics.create(CollectorRegistry()).registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
    return names


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _queries(dash: dict[str, Any]) -> list[str]:
    out = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    out += [a["expr"] for a in dash["annotations"]["list"]]
    out += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return out


def test_queries_use_known_names_only() -> None:
    dash = _dashboard()
    recorded = {r["record"] for r in rules() if "record" in r}
    metrics_ok = recorded | contract_metrics() | BUILTIN_METRICS | _operator_metrics()
    labels_ok = contract_labels() | TARGET_LABELS | BUILTIN_LABELS
    queries = _queries(dash)
    assert len(queries) >= 10
    for q in queries:
        extra_labels: set[str] = set()
        if q.startswith("label_values("):
            # label_values(SELECTOR, LABEL): Grafana's, not PromQL.
            q, label = q[len("label_values(") : -1].rsplit(",", 1)
            extra_labels.add(label.strip())
        metrics, labels, functions = tokens(q.replace("$", ""))
        labels |= extra_labels
        assert metrics and metrics <= metrics_ok, (q, metrics - metrics_ok)
        assert labels <= labels_ok, (q, labels - labels_ok)
        assert functions <= FUNCTIONS, (q, functions)


def test_panels_cover_a_rollout() -> None:
    panels = {p["title"]: p for p in _dashboard()["panels"]}
    wanted = {
        "Traffic weights": "modeldeploy:requests:rate1m",
        "Input drift: PSI per feature": "modeldeploy:feature_psi:1m",
        "Prediction mean: stable vs candidate": "modeldeploy:prediction_mean_stderr:1m",
        "Latency": "modeldeploy:request_duration_seconds:p99_1m",
        "Errors": "modeldeploy:request_server_errors:ratio_rate1m",
        "Rollbacks: alerts firing": "ALERTS",
        "Rollouts finished": "modeldeploy_operator_rollouts_total",
    }
    for title, metric in wanted.items():
        assert title in panels, title
        assert any(metric in t["expr"] for t in panels[title]["targets"]), title
    # Error bars: the mean plus and minus two standard errors, per role.
    legends = {t["legendFormat"] for t in panels["Prediction mean: stable vs candidate"]["targets"]}
    assert {"{{modeldeployment}} {{role}} +2se", "{{modeldeployment}} {{role}} -2se"} <= legends


def test_rollback_panel_lists_every_alert_of_the_rules() -> None:
    panel = next(p for p in _dashboard()["panels"] if p["title"].startswith("Rollbacks"))
    expr = panel["targets"][0]["expr"]
    names = expr.split('alertname=~"')[1].split('"')[0].split("|")
    assert set(names) == CHART_ALERTS == {r["alert"] for r in rules() if "alert" in r}


def test_panel_layout_is_valid() -> None:
    dash = _dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "namespace", "modeldeployment"}

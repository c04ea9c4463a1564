"""Metric, label and function names used by PromQL expressions, and the names allowed.

A small tokenizer (no PromQL parser exists in Python here) that is exact for the shapes our
rules and dashboard use; its own test pins what it reads.
"""

from __future__ import annotations

import re
from typing import Any

import promsim as ps
import yaml

from modeldeploy.server import contract

# Labels Prometheus adds to a model server's series from its pod (see the chart's README).
TARGET_LABELS = {"namespace", "pod", "modeldeployment", "slot", "role"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
FUNCTIONS = {
    "abs",
    "clamp_min",
    "count",
    "histogram_quantile",
    "increase",
    "label_replace",
    "ln",
    "max",
    "min",
    "rate",
    "round",
    "sqrt",
    "sum",
}
KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
}
# The default alerts (a ModelDeployment's default analysis.alerts).
ALERTS = {
    "ModelFeatureDrift",
    "ModelPredictionDivergence",
    "ModelHighErrorRate",
    "ModelHighLatency",
}
# In the chart's rules too, but watched only when a ModelDeployment names them.
OPT_IN_ALERTS = {"ModelLivePerformanceDrop", "ModelConceptDrift"}
CHART_ALERTS = ALERTS | OPT_IN_ALERTS

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_RANGE = re.compile(r"\[[0-9smhdwy]+\]")
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def tokens(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(metric names, label names, function names) used by a PromQL expression."""
    labels: set[str] = set()
    for m in _GROUPING.finditer(expr):
        labels |= {x.strip() for x in m.group(2).split(",") if x.strip()}
    expr = _GROUPING.sub(" ", expr)
    for m in _MATCHERS.finditer(_STRING.sub('""', expr)):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", m.group(1)))
    expr = _RANGE.sub("", _MATCHERS.sub("", _STRING.sub('""', expr)))
    metrics: set[str] = set()
    functions: set[str] = set()
    for m in _IDENT.finditer(expr):
        name = m.group(1)
        if name in KEYWORDS:
            continue
        (functions if m.group(2) else metrics).add(name)
    return metrics, labels, functions


def rules() -> list[dict[str, Any]]:
    """Every recording rule and alert of the chart's rule file."""
    doc = yaml.safe_load(ps.RULES_FILE.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def contract_metrics() -> set[str]:
    """Metric names the server publishes (a histogram's three series included)."""
    names = {v for k, v in vars(contract).items() if k.startswith("METRIC_")}
    return names | {contract.METRIC_REQUEST_DURATION + s for s in HISTOGRAM_SUFFIXES}


def contract_labels() -> set[str]:
    """Label names the server puts on its series (plus a histogram's ``le``)."""
    return {v for k, v in vars(contract).items() if k.startswith("LABEL_")} | {"le"}

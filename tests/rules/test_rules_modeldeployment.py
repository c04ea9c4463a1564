"""A ModelDeployment's own alerts, evaluated by promtool beside the chart's rules.

They read the series the chart records, so they are loaded together, as in a cluster.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import promsim as ps
import yaml

from modeldeploy.operator.builders import Owner
from modeldeploy.operator.model import Spec
from modeldeploy.operator.promrules import LABEL_THRESHOLDS, rule_groups

STEPS = 40
CONTRACT = ps.ROOT / "server" / "src" / "modeldeploy" / "server" / "contract"


def _spec(name: str) -> Spec:
    return Spec.from_body(
        {
            "metadata": {"name": name, "namespace": "ml", "generation": 1},
            "spec": {
                "model": {
                    "name": name,
                    "version": "2",
                    "bundleURI": "file:///b.tar.gz",
                    "sha256": "a" * 64,
                },
                "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
                "server": {"image": "modeldeploy-server:dev"},
                "trafficProvider": {"replicas": {}},
                "analysis": {"interval": "10s"},
            },
        }
    )


def _predictions(md: str, role: str, per_step: float, mean: float) -> list[ps.Series]:
    labels = {
        "namespace": "ml",
        "modeldeployment": md,
        "role": role,
        "pod": f"{md}-{role}",
        "model": md,
        "version": "2" if role == "candidate" else "1",
    }
    var = 0.04
    return [
        ps.Series("modeldeploy_predictions_total", labels, ps.cumulative([per_step] * STEPS)),
        ps.Series(
            "modeldeploy_prediction_sum_total", labels, ps.cumulative([per_step * mean] * STEPS)
        ),
        ps.Series(
            "modeldeploy_prediction_sum_squares_total",
            labels,
            ps.cumulative([per_step * (var + mean * mean)] * STEPS),
        ),
    ]


def test_divergence_needs_30_stable_predictions_in_every_rule(tmp_path: Path) -> None:
    # Both candidates answer far from their stable (0.9 vs 0.5). iris's stable made only 4
    # predictions in the window: neither the chart's alert nor iris's own may fire.
    series = (
        _predictions("iris", "candidate", 100, 0.9)
        + _predictions("iris", "stable", 1, 0.5)
        + _predictions("churn", "candidate", 100, 0.9)
        + _predictions("churn", "stable", 100, 0.5)
    )
    own = tmp_path / "own.yaml"
    groups = [
        g
        for name in ("iris", "churn")
        for g in rule_groups(Owner(name=name, namespace="ml", uid="1"), _spec(name))
    ]
    own.write_text(yaml.safe_dump({"groups": groups}))
    marked = f'{LABEL_THRESHOLDS}="churn"'
    firing = (
        "count by (modeldeployment, role, modeldeploy_thresholds) "
        '(ALERTS{alertname="ModelPredictionDivergence", alertstate="firing"})'
    )
    test = ps.UnitTest(
        "own rules",
        series,
        expr_tests=[
            {
                "expr": firing,
                "eval_time": "8m",
                "exp_samples": [
                    {"labels": '{modeldeployment="churn", role="candidate"}', "value": 1},
                    {
                        "labels": f'{{modeldeployment="churn", role="candidate", {marked}}}',
                        "value": 1,
                    },
                ],
            }
        ],
    )
    ps.run_promtool_tests(tmp_path, [test], extra_rule_files=[own])


def test_the_contract_imports_only_the_standard_library() -> None:
    """The operator imports the contract, rules included: no yaml, numpy or FastAPI there."""
    for path in CONTRACT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert (
                    top in sys.stdlib_module_names
                    or top == "__future__"
                    or (
                        name.startswith("modeldeploy.server.contract")
                        or (
                            name == "modeldeploy.server"
                            and isinstance(node, ast.ImportFrom)
                            and [a.name for a in node.names] == ["contract"]
                        )
                    )
                ), (path.name, name)

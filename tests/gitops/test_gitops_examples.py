"""examples/gitops: the kustomize base and overlays build, and the operator accepts them."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml
from luahealth import ROOT

from e2e.cluster.fixtures import harness_tool
from modeldeploy.operator.engine import plan
from modeldeploy.operator.model import Spec

EXAMPLES = ROOT / "examples" / "gitops"
CHART_ALERTS = {
    "ModelFeatureDrift",
    "ModelPredictionDivergence",
    "ModelHighErrorRate",
    "ModelHighLatency",
}


def kustomize(folder: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [harness_tool("kubectl"), "kustomize", str(EXAMPLES / folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.mark.parametrize("folder", ["base", "overlays/staging", "overlays/production"])
def test_builds_one_model_deployment_per_strategy(folder: str) -> None:
    docs = kustomize(folder)
    assert {d["kind"] for d in docs} == {"ModelDeployment"}
    specs = [Spec.from_body(d, default_image="localhost/modeldeploy-server:dev") for d in docs]
    assert sorted(s.strategy for s in specs) == ["blueGreen", "canary", "shadow"]
    for spec, doc in zip(specs, docs, strict=True):
        assert plan(spec), doc["metadata"]["name"]
        assert spec.template.model.name == doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "models"
        # Every alert the chart's rules define exists; the others are the operator's own.
        assert set(spec.analysis.alerts) & CHART_ALERTS


def test_overlays_set_namespace_replicas_and_pace() -> None:
    staging = {d["metadata"]["name"]: d for d in kustomize("overlays/staging")}
    production = {d["metadata"]["name"]: d for d in kustomize("overlays/production")}
    assert {d["metadata"]["namespace"] for d in staging.values()} == {"models-staging"}
    assert {d["metadata"]["namespace"] for d in production.values()} == {"models-production"}
    assert {d["spec"]["replicas"] for d in staging.values()} == {1}
    assert {d["spec"]["replicas"] for d in production.values()} == {4}
    assert str(staging["churn"]["spec"]["model"]["version"]) == "1.5.0"
    assert str(production["churn"]["spec"]["model"]["version"]) == "1.4.0"
    steps = production["churn"]["spec"]["strategy"]["canary"]["steps"]
    assert {"pause": {}} in steps
    weights = [s["setWeight"] for s in steps if "setWeight" in s]
    assert weights == sorted(weights)
    assert production["churn"]["spec"]["analysis"]["thresholds"]["divergenceStdErrors"] == 3


def test_model_fields_match_the_crd_patterns() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml").read_text())
    model_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["model"]
    for doc in kustomize("base") + kustomize("overlays/staging") + kustomize("overlays/production"):
        model = doc["spec"]["model"]
        assert set(model_schema["required"]) <= set(model)
        for key, value in model.items():
            pattern = model_schema["properties"][key].get("pattern")
            if pattern:
                assert re.search(pattern, str(value)), (doc["metadata"]["name"], key, value)

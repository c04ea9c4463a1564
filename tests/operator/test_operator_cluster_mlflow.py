"""The CRD's admission of models:/ specs, on the real apiserver (CEL rules and patterns): the
mlflow block with and only with a models:/ URI, sha256 optional for models:/ only, the URI's
forms; what the parser refuses, the apiserver refuses first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.api import Cluster

pytestmark = pytest.mark.cluster

CRD = Path(__file__).resolve().parents[2] / "crds" / "modeldeploy.io_modeldeployments.yaml"
SHA = "a" * 64
MLFLOW = {"trackingURI": "http://mlflow.ml.svc:5000", "credentialsSecret": "mlflow-reader"}


def manifest(namespace: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "registry", "namespace": namespace},
        "spec": {
            "model": {"name": "iris", "version": "1", **model},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
    }


def dry_run(cluster: Cluster, obj: dict[str, Any]) -> tuple[int, str]:
    res = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", check=False, input=json.dumps(obj)
    )
    return res.returncode, res.stderr


def test_models_specs_are_checked_at_admission(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modeldeploy.io")
    for good in (
        {"bundleURI": "models:/iris@champion", "mlflow": MLFLOW},
        {"bundleURI": "models:/iris/3", "mlflow": {"trackingURI": "https://mlflow.test/x"}},
        {"bundleURI": "models:/iris/3", "mlflow": MLFLOW, "sha256": SHA},
        {"bundleURI": "https://example.test/b.tar.gz", "sha256": SHA},
    ):
        code, err = dry_run(cluster, manifest(namespace, good))
        assert code == 0, (good, err)
    bad = {
        "mlflow (trackingURI) is required with a models:/ bundleURI": {
            "bundleURI": "models:/iris@champion"
        },
        "and applies only to one": {
            "bundleURI": "https://example.test/b.tar.gz",
            "sha256": SHA,
            "mlflow": MLFLOW,
        },
        "sha256 is required (only a models:/ bundleURI may omit it": {
            "bundleURI": "https://example.test/b.tar.gz"
        },
        "a models:/ bundleURI is models:/NAME/VERSION": {
            "bundleURI": "models:/iris@v2",
            "mlflow": MLFLOW,
        },
        "spec.model.mlflow.trackingURI": {
            "bundleURI": "models:/iris/1",
            "mlflow": {"trackingURI": "http://user:pw@mlflow.test"},
        },
        "spec.model.mlflow.credentialsSecret": {
            "bundleURI": "models:/iris/1",
            "mlflow": {**MLFLOW, "credentialsSecret": "Not_A_Name"},
        },
    }
    for message, model in bad.items():
        code, err = dry_run(cluster, manifest(namespace, model))
        assert code != 0 and message in err, (message, err)

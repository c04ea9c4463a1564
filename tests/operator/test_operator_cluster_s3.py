"""The CRD's admission of s3:// models, on the real apiserver (CEL rules and patterns): what
the parser refuses, the apiserver refuses first, naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.api import Cluster

pytestmark = pytest.mark.cluster

CRD = Path(__file__).resolve().parents[2] / "crds" / "modeldeploy.io_modeldeployments.yaml"
SHA = "a" * 64


def manifest(namespace: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "s3", "namespace": namespace},
        "spec": {
            "model": {"name": "iris", "version": "1", "sha256": SHA, **model},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
    }


def dry_run(cluster: Cluster, obj: dict[str, Any]) -> tuple[int, str]:
    res = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", check=False, input=json.dumps(obj)
    )
    return res.returncode, res.stderr


def test_s3_models_are_checked_at_admission(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modeldeploy.io")
    good = {
        "bundleURI": "s3://models/iris/1/",
        "s3": {
            "endpoint": "http://s3.storage.svc:7070",
            "region": "us-east-1",
            "pathStyle": True,
            "credentialsSecret": "model-store",
        },
    }
    code, err = dry_run(cluster, manifest(namespace, good))
    assert code == 0, err
    bad = {
        "s3 applies only to an s3:// bundleURI": {
            "bundleURI": "https://example.test/b.tar.gz",
            "s3": {"region": "us-east-1"},
        },
        "an s3:// bundleURI is s3://BUCKET/KEY": {"bundleURI": "s3://Bad_Bucket/b.tar.gz"},
        "no '..'": {"bundleURI": "s3://a..b/b.tar.gz"},
        "spec.model.s3.endpoint": {
            "bundleURI": "s3://models/b.tar.gz",
            "s3": {"endpoint": "s3.storage.svc:7070"},
        },
        "spec.model.s3.credentialsSecret": {
            "bundleURI": "s3://models/b.tar.gz",
            "s3": {"credentialsSecret": "Not_A_Name"},
        },
    }
    for message, model in bad.items():
        code, err = dry_run(cluster, manifest(namespace, model))
        assert code != 0 and message in err, (message, err)

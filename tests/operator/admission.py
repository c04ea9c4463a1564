"""Checking specs against the real CRD's admission (``kubectl apply --dry-run=server``):
what the operator cluster tests of spec blocks share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2e.cluster.api import Cluster

CRD = Path(__file__).resolve().parents[2] / "crds" / "modeldeploy.io_modeldeployments.yaml"


def install_crd(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.wait_established("modeldeployments.modeldeploy.io")


def manifest(name: str, namespace: str, model: dict[str, Any]) -> dict[str, Any]:
    """A minimal ModelDeployment around the ``model`` block (name and version filled in)."""
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "iris", "version": "1", **model},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
    }


def dry_run(cluster: Cluster, obj: dict[str, Any]) -> tuple[int, str]:
    """The apiserver's verdict on ``obj``: exit code and message."""
    res = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", check=False, input=json.dumps(obj)
    )
    return res.returncode, res.stderr

"""The CRD's admission of models:/ specs, on the real apiserver (CEL rules and patterns): the
mlflow block with and only with a models:/ URI, sha256 optional for models:/ only, the URI's
forms, the write-back alias; what the parser refuses, the apiserver refuses first."""

from __future__ import annotations

import pytest
from admission import dry_run, install_crd, manifest

from e2e.cluster.api import Cluster

pytestmark = pytest.mark.cluster

SHA = "a" * 64
MLFLOW = {"trackingURI": "http://mlflow.ml.svc:5000", "credentialsSecret": "mlflow-reader"}


def test_models_specs_are_checked_at_admission(cluster: Cluster, namespace: str) -> None:
    install_crd(cluster)
    for good in (
        {"bundleURI": "models:/iris@champion", "mlflow": MLFLOW},
        {"bundleURI": "models:/iris/3", "mlflow": {"trackingURI": "https://mlflow.test/x"}},
        {"bundleURI": "models:/iris/3", "mlflow": MLFLOW, "sha256": SHA},
        {"bundleURI": "https://example.test/b.tar.gz", "sha256": SHA},
        {"bundleURI": "models:/iris/3", "mlflow": {**MLFLOW, "writeBack": {"enabled": True}}},
        {"bundleURI": "models:/iris/3", "mlflow": {**MLFLOW, "writeBack": {"alias": "live"}}},
    ):
        code, err = dry_run(cluster, manifest("registry", namespace, good))
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
        "writeBack.alias must not look like a version": {
            "bundleURI": "models:/iris/1",
            "mlflow": {**MLFLOW, "writeBack": {"enabled": True, "alias": "v2"}},
        },
        "spec.model.mlflow.writeBack.alias": {
            "bundleURI": "models:/iris/1",
            "mlflow": {**MLFLOW, "writeBack": {"alias": "no spaces"}},
        },
        "spec.model.mlflow.credentialsSecret": {
            "bundleURI": "models:/iris/1",
            "mlflow": {**MLFLOW, "credentialsSecret": "Not_A_Name"},
        },
    }
    for message, model in bad.items():
        code, err = dry_run(cluster, manifest("registry", namespace, model))
        assert code != 0 and message in err, (message, err)

"""The CRD's admission of s3:// models, on the real apiserver (CEL rules and patterns): what
the parser refuses, the apiserver refuses first, naming the field."""

from __future__ import annotations

import pytest
from admission import dry_run, install_crd, manifest

from e2e.cluster.api import Cluster

pytestmark = pytest.mark.cluster

SHA = "a" * 64


def test_s3_models_are_checked_at_admission(cluster: Cluster, namespace: str) -> None:
    install_crd(cluster)
    good = {
        "bundleURI": "s3://models/iris/1/",
        "s3": {
            "endpoint": "http://s3.storage.svc:7070",
            "region": "us-east-1",
            "pathStyle": True,
            "credentialsSecret": "model-store",
        },
    }
    code, err = dry_run(cluster, manifest("s3", namespace, {"sha256": SHA, **good}))
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
        code, err = dry_run(cluster, manifest("s3", namespace, {"sha256": SHA, **model}))
        assert code != 0 and message in err, (message, err)

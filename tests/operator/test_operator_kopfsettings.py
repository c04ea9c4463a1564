"""kopf's diff-base, built from the trimmed body: the same essence as kopf's own storage
builds from the whole one, so a spec change is told from the rest exactly as before."""

from __future__ import annotations

import copy
import json
from typing import Any

import kopf
from opworld import body

from modeldeploy.operator import defaults as d
from modeldeploy.operator.kopfsettings import EssenceDiffBaseStorage, trimmed


def live_body() -> dict[str, Any]:
    """A ModelDeployment as a watch delivers it: status, managedFields, kopf's and kubectl's
    annotations, an owner, labels."""
    raw = {
        "apiVersion": f"{d.GROUP}/{d.VERSION}",
        "kind": "ModelDeployment",
        **copy.deepcopy(body()),
    }
    raw["metadata"].update(
        {
            "uid": "1234",
            "resourceVersion": "981",
            "generation": 3,
            "creationTimestamp": "2026-12-01T00:00:00Z",
            "labels": {"team": "risk"},
            "annotations": {
                f"{d.GROUP}/last-handled-configuration": json.dumps({"spec": raw["spec"]}),
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "owner.example/note": "kept",
            },
            "ownerReferences": [{"kind": "App", "name": "risk", "uid": "9", "apiVersion": "v1"}],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 20,
            "finalizers": [d.FINALIZER],
        }
    )
    raw["status"] = {
        "phase": "Progressing",
        "history": [{"version": f"v{i}", "outcome": "Promoted"} for i in range(10)],
    }
    return raw


def storages() -> tuple[kopf.AnnotationsDiffBaseStorage, EssenceDiffBaseStorage]:
    key = "last-handled-configuration"
    return (
        kopf.AnnotationsDiffBaseStorage(prefix=d.GROUP, key=key),
        EssenceDiffBaseStorage(prefix=d.GROUP, key=key),
    )


def test_the_essence_is_kopfs_own() -> None:
    theirs, ours = storages()
    raw = live_body()
    expected = theirs.build(body=kopf.Body(raw))
    assert ours.build(body=kopf.Body(raw)) == expected
    assert "status" not in expected and expected["spec"] == raw["spec"]
    assert expected["metadata"]["annotations"] == {"owner.example/note": "kept"}
    changed = live_body()
    changed["spec"]["replicas"] = 5
    assert ours.build(body=kopf.Body(changed)) != expected, "a spec change shows"
    status_only = live_body()
    status_only["status"]["phase"] = "Healthy"
    status_only["metadata"]["resourceVersion"] = "982"
    assert ours.build(body=kopf.Body(status_only)) == expected, "a status write does not"


def test_extra_fields_are_built_kopfs_way() -> None:
    theirs, ours = storages()
    raw = live_body()
    extra = [("status", "phase")]
    built = ours.build(body=kopf.Body(raw), extra_fields=extra)
    assert built == theirs.build(body=kopf.Body(raw), extra_fields=extra)
    assert built["status"] == {"phase": "Progressing"}


def test_trimmed_leaves_the_body_alone() -> None:
    raw = live_body()
    before = copy.deepcopy(raw)
    out = trimmed(raw)
    assert raw == before
    assert set(out) == {"apiVersion", "kind", "metadata", "spec"}
    assert "managedFields" not in out["metadata"] and "uid" not in out["metadata"]

"""Observations from Deployment and Pod objects, and the status merge patch."""

from __future__ import annotations

from modeldeploy.operator import defaults as d
from modeldeploy.operator.kube import Kind, merge_patch
from modeldeploy.operator.observe import (
    deployment_summary,
    not_ready_reason,
    pod_summary,
    slot_observation,
)


def deployment(
    replicas: int = 2,
    ready: int = 2,
    updated: int = 2,
    total: int = 2,
    gen: int = 3,
    observed: int = 3,
) -> dict:
    return {
        "metadata": {"generation": gen, "annotations": {d.ANNOTATION_REVISION: "abc"}},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "readyReplicas": ready,
            "updatedReplicas": updated,
        },
    }


def test_ready_deployment_serves_its_revision() -> None:
    obs = slot_observation(deployment_summary(deployment()), [])
    assert obs.serves("abc", 2)
    assert not obs.serves("other", 2) and not obs.serves("abc", 3)
    assert obs.serves("abc", 1), "at least: a slot scaled for a later step serves"


def test_rolling_or_stale_deployment_does_not_serve() -> None:
    assert not slot_observation(deployment_summary(deployment(observed=2)), []).serves("abc", 2)
    rolling = deployment(updated=1, total=3, ready=2)
    assert not slot_observation(deployment_summary(rolling), []).serves("abc", 2)
    assert slot_observation(deployment_summary(deployment(0, 0, 0, 0)), []).serves("abc", 0)
    assert not slot_observation(None, []).exists


def test_pod_reasons() -> None:
    init_failed = {
        "initContainerStatuses": [
            {
                "name": "fetch-bundle",
                "state": {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "message": "fetch: http://x/b.tar.gz: HTTP 404",
                    }
                },
            }
        ]
    }
    assert not_ready_reason(init_failed) == (
        "init container fetch-bundle exited 1 (Error): fetch: http://x/b.tar.gz: HTTP 404"
    )
    crashing = {
        "containerStatuses": [
            {
                "name": "server",
                "ready": False,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {
                    "terminated": {
                        "exitCode": 2,
                        "reason": "Error",
                        "message": "sha256 mismatch: expected 00",
                    }
                },
            }
        ]
    }
    reason = not_ready_reason(crashing)
    assert "CrashLoopBackOff" in reason and "sha256 mismatch" in reason
    unready = {"containerStatuses": [{"name": "server", "ready": False, "state": {"running": {}}}]}
    assert "readiness probe" in not_ready_reason(unready)


def test_pod_summary_and_slot_reason() -> None:
    pod = {
        "metadata": {"name": "p1", "labels": {d.LABEL_ROLE: "candidate"}},
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "server", "ready": False, "state": {"waiting": {"reason": "ErrImagePull"}}}
            ],
        },
    }
    summary = pod_summary(pod)
    assert summary["role"] == "candidate" and not summary["ready"]
    obs = slot_observation(deployment_summary(deployment(ready=1)), [summary])
    assert "ErrImagePull" in obs.reason


def test_merge_patch_removes_and_nests() -> None:
    old = {"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "gone": True}
    new = {"a": 1, "b": {"x": 1, "y": 3, "z": 4}, "c": [1, 2]}
    assert merge_patch(old, new) == {"gone": None, "b": {"y": 3, "z": 4}, "c": [1, 2]}
    assert merge_patch(new, new) == {}


def test_kind_paths() -> None:
    assert Kind("", "v1", "pods").path("ns", "p") == "/api/v1/namespaces/ns/pods/p"
    assert Kind("apps", "v1", "deployments").path("ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert (
        Kind(d.GROUP, d.VERSION, d.PLURAL).path("ns", "m", "status")
        == "/apis/modeldeploy.io/v1alpha1/namespaces/ns/modeldeployments/m/status"
    )

"""The chart's RBAC grants exactly what the operator does, and nothing broad."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helmchart as hc
import pytest

READ = {"get", "list", "watch"}
OWN = READ | {"create", "patch", "delete"}
# (apiGroup, resource) -> verbs, for every namespace the operator works in.
NAMESPACED = {
    ("modeldeploy.io", "modeldeployments"): READ | {"patch"},
    ("modeldeploy.io", "modeldeployments/status"): {"get", "patch"},
    ("modeldeploy.io", "modeldeployments/finalizers"): {"update"},
    ("apps", "deployments"): OWN,
    ("", "services"): OWN,
    ("policy", "poddisruptionbudgets"): OWN,
    ("autoscaling", "horizontalpodautoscalers"): OWN,
    ("batch", "jobs"): OWN,  # the retraining Jobs
    ("", "pods"): READ | {"patch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("gateway.networking.k8s.io", "httproutes"): OWN,
    ("networking.istio.io", "virtualservices"): OWN,
    ("traefik.io", "traefikservices"): OWN,
    ("monitoring.coreos.com", "prometheusrules"): OWN,
}
# Read-only, cluster-wide, in both scopes: kopf observes CRDs and namespaces.
CLUSTER_READ = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): READ,
    ("", "namespaces"): READ,
}
CLUSTER = {**NAMESPACED, **CLUSTER_READ, ("kopf.dev", "clusterkopfpeerings"): READ | {"patch"}}
ROLE = {**NAMESPACED, ("kopf.dev", "kopfpeerings"): READ | {"patch"}}
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}
DANGEROUS_RESOURCES = {
    "*",
    "secrets",
    "configmaps",
    "serviceaccounts/token",
    "nodes",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
}


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs of a Role or ClusterRole."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


@pytest.fixture(scope="module")
def cluster_mode(tmp_path_factory: pytest.TempPathFactory) -> list[hc.Manifest]:
    return hc.template({}, tmp_path_factory.mktemp("v"))


@pytest.fixture(scope="module")
def namespaced_mode(tmp_path_factory: pytest.TempPathFactory) -> list[hc.Manifest]:
    return hc.template(
        {"watch": {"scope": "namespaces", "namespaces": ["a", "b"]}}, tmp_path_factory.mktemp("v")
    )


def test_nothing_broad_or_dangerous(
    cluster_mode: list[hc.Manifest], namespaced_mode: list[hc.Manifest]
) -> None:
    for manifests in (cluster_mode, namespaced_mode):
        for role in hc.by_kind(manifests, "ClusterRole") + hc.by_kind(manifests, "Role"):
            for (group, resource), verbs in grants(role).items():
                assert group != "*" and resource not in DANGEROUS_RESOURCES, (group, resource)
                assert not verbs & DANGEROUS_VERBS, (resource, verbs)
                assert "update" not in verbs or resource.endswith("/finalizers"), resource


def test_cluster_scope_grants_exactly_what_the_operator_does(
    cluster_mode: list[hc.Manifest],
) -> None:
    role = hc.one(cluster_mode, "ClusterRole")
    assert grants(role) == CLUSTER
    assert not hc.by_kind(cluster_mode, "Role")
    binding = hc.one(cluster_mode, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    sa = hc.one(cluster_mode, "ServiceAccount")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": sa["metadata"]["name"],
            "namespace": "modeldeploy-system",
        }
    ]


def test_namespace_scope_writes_only_in_watched_namespaces(
    namespaced_mode: list[hc.Manifest],
) -> None:
    cluster_role = hc.one(namespaced_mode, "ClusterRole")
    assert grants(cluster_role) == CLUSTER_READ
    roles = hc.by_kind(namespaced_mode, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["a", "b"]
    for role in roles:
        assert grants(role) == ROLE
    bindings = hc.by_kind(namespaced_mode, "RoleBinding")
    assert sorted((b["metadata"]["namespace"], b["roleRef"]["kind"]) for b in bindings) == [
        ("a", "Role"),
        ("b", "Role"),
    ]
    for b in bindings:
        assert b["subjects"][0]["namespace"] == "modeldeploy-system"


def test_rbac_can_be_left_to_the_user(tmp_path: Path) -> None:
    manifests = hc.template(
        {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "existing"}},
        tmp_path,
    )
    kinds = {m["kind"] for m in manifests}
    assert not kinds & {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    }
    pod = hc.one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "existing"

"""helm lint and helm template of charts/modeldeploy, parsed and checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helmchart as hc
import pytest
import yaml
from podsecurity import restricted_violations

ROOT = hc.ROOT
RULES_FILE = hc.CHART / "rules" / "modeldeploy-rules.yaml"
DASHBOARD_FILE = hc.CHART / "dashboards" / "modeldeploy.json"
MONITORING = "monitoring.coreos.com/v1"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watch": {"scope": "namespaces", "namespaces": ["team-a", "team-b"]}},
    "namespaced-release-namespace": {"watch": {"scope": "namespaces"}},
    "single-replica": {
        "replicaCount": 1,
        "networkPolicy": {"enabled": False},
        "monitoring": {"dashboard": {"enabled": False}, "rulesConfigMap": False},
    },
    "custom-images": {
        "image": {
            "repository": "registry.example/ops/modeldeploy-operator",
            "tag": "1.2.3",
            "pullPolicy": "Always",
        },
        "serverImage": {"repository": "registry.example/ops/modeldeploy-server", "tag": "1.2.3"},
        "ports": {"health": 18080, "metrics": 19090},
        "prometheus": {"url": "http://prom.monitoring:9090"},
        "serviceAccount": {"name": "ops"},
        "monitoring": {"prometheusOperator": "true", "labels": {"release": "kps"}},
    },
}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict(name: str, tmp_path: Path) -> None:
    proc = hc.lint(VALUE_SETS[name], tmp_path)
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"replicaCount": 0}, "/replicaCount"),
        ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
        ({"watch": {"scope": "everywhere"}}, "/watch/scope"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"prometheus": {"url": "prometheus:9090"}}, "/prometheus/url"),
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),
    ],
)
def test_schema_refuses_bad_values(bad: dict[str, Any], message: str, tmp_path: Path) -> None:
    proc = hc.lint(bad, tmp_path, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[hc.Manifest]]:
    tmp = tmp_path_factory.mktemp("values")
    return {name: hc.template(values, tmp) for name, values in VALUE_SETS.items()}


CURRENT_APIS = {
    "v1",
    "apps/v1",
    "policy/v1",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
    "kopf.dev/v1",
    "monitoring.coreos.com/v1",
}


def test_only_current_api_versions(rendered: dict[str, list[hc.Manifest]]) -> None:
    for name, manifests in rendered.items():
        for m in manifests:
            assert m["apiVersion"] in CURRENT_APIS, (name, m["kind"], m["apiVersion"])


def test_every_object_labelled_and_namespaced(rendered: dict[str, list[hc.Manifest]]) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    for name, manifests in rendered.items():
        for m in manifests:
            labels = m["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == "md", (name, m["kind"])
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            if m["kind"] not in cluster_scoped:
                assert m["metadata"].get("namespace"), (name, m["kind"], m["metadata"]["name"])


def test_operator_pods_are_restricted(rendered: dict[str, list[hc.Manifest]]) -> None:
    for name, manifests in rendered.items():
        spec = hc.one(manifests, "StatefulSet")["spec"]["template"]["spec"]
        assert restricted_violations(spec) == [], name
        container = spec["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "limits" in container["resources"] and "requests" in container["resources"]


def test_restricted_checker_catches_violations() -> None:
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "c",
                "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
                "ports": [{"containerPort": 80, "hostPort": 80}],
            }
        ],
    }
    found = "\n".join(restricted_violations(bad))
    for needle in (
        "hostNetwork",
        "hostPath",
        "privileged",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccompProfile",
        "dropping ALL",
        "SYS_ADMIN",
        "hostPort",
    ):
        assert needle in found


def _args(manifests: list[hc.Manifest]) -> list[str]:
    return hc.one(manifests, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]


def test_operator_defaults(rendered: dict[str, list[hc.Manifest]]) -> None:
    dep = hc.one(rendered["defaults"], "StatefulSet")
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["podManagementPolicy"] == "Parallel"
    assert dep["spec"]["serviceName"] == hc.one(rendered["defaults"], "Service")["metadata"]["name"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "localhost/modeldeploy-operator:dev"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["args"] == [
        "operator",
        "--all-namespaces",
        "--prometheus-url=http://prometheus-operated.monitoring.svc:9090",
        "--server-image=localhost/modeldeploy-server:dev",
        "--peering=modeldeploy",
        "--priority=$(POD_INDEX)",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics-port=9090",
        "--log-level=info",
    ]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Each replica peers with its own priority: the StatefulSet's pod index.
    env = {e["name"]: e for e in c["env"]}
    assert (
        env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
        == "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert pod["serviceAccountName"] == "md-modeldeploy"
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_operator_follows_values(rendered: dict[str, list[hc.Manifest]]) -> None:
    c = hc.one(rendered["custom-images"], "StatefulSet")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert c["image"] == "registry.example/ops/modeldeploy-operator:1.2.3"
    assert c["imagePullPolicy"] == "Always"
    assert "--server-image=registry.example/ops/modeldeploy-server:1.2.3" in c["args"]
    assert "--prometheus-url=http://prom.monitoring:9090" in c["args"]
    assert "--liveness=http://0.0.0.0:18080/healthz" in c["args"]
    assert "--metrics-port=19090" in c["args"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "health": 18080,
        "metrics": 19090,
    }
    svc = hc.one(rendered["custom-images"], "Service")
    assert svc["spec"]["ports"][0]["port"] == 19090
    assert _args(rendered["namespaced"])[1:3] == ["--namespace=team-a", "--namespace=team-b"]
    assert _args(rendered["namespaced-release-namespace"])[1] == "--namespace=modeldeploy-system"


def test_pdb_and_network_policy(rendered: dict[str, list[hc.Manifest]]) -> None:
    pdb = hc.one(rendered["defaults"], "PodDisruptionBudget")
    dep = hc.one(rendered["defaults"], "StatefulSet")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    assert not hc.by_kind(rendered["single-replica"], "PodDisruptionBudget")
    assert not hc.by_kind(rendered["single-replica"], "NetworkPolicy")
    np = hc.one(rendered["defaults"], "NetworkPolicy")
    assert np["spec"]["podSelector"] == dep["spec"]["selector"]
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    egress_ports = {
        (p["port"], p["protocol"]) for rule in np["spec"]["egress"] for p in rule["ports"]
    }
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP"), (9090, "TCP")}


def test_peering_objects(rendered: dict[str, list[hc.Manifest]]) -> None:
    assert hc.one(rendered["defaults"], "ClusterKopfPeering")["metadata"]["name"] == "modeldeploy"
    assert not hc.by_kind(rendered["defaults"], "KopfPeering")
    namespaced = hc.by_kind(rendered["namespaced"], "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in namespaced) == ["team-a", "team-b"]
    assert not hc.by_kind(rendered["namespaced"], "ClusterKopfPeering")


def test_prometheus_operator_objects_follow_capabilities(tmp_path: Path) -> None:
    without = hc.template({}, tmp_path)
    with_api = hc.template({}, tmp_path, api_versions=[MONITORING])
    forced_off = hc.template(
        {"monitoring": {"prometheusOperator": "false"}}, tmp_path, api_versions=[MONITORING]
    )
    assert not hc.by_kind(without, "PrometheusRule") and not hc.by_kind(without, "PodMonitor")
    assert not hc.by_kind(forced_off, "PrometheusRule")
    assert len(hc.by_kind(with_api, "PodMonitor")) == 2
    rule = hc.one(with_api, "PrometheusRule")
    # The PrometheusRule carries the plain rule file's groups unchanged.
    assert rule["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]


def test_pod_monitor_adds_the_labels_the_rules_use(tmp_path: Path) -> None:
    values = {
        "watch": {"scope": "namespaces", "namespaces": ["ml"]},
        "monitoring": {"prometheusOperator": "true"},
    }
    monitors = {
        m["metadata"]["name"]: m for m in hc.by_kind(hc.template(values, tmp_path), "PodMonitor")
    }
    models = monitors["md-modeldeploy-models"]["spec"]
    assert models["namespaceSelector"] == {"matchNames": ["ml"]}
    assert models["selector"]["matchExpressions"] == [
        {"key": "modeldeploy.io/name", "operator": "Exists"}
    ]
    endpoint = models["podMetricsEndpoints"][0]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    relabel = {r["targetLabel"]: r["sourceLabels"][0] for r in endpoint["relabelings"]}
    assert relabel == {
        "modeldeployment": "__meta_kubernetes_pod_label_modeldeploy_io_name",
        "slot": "__meta_kubernetes_pod_label_modeldeploy_io_slot",
        "role": "__meta_kubernetes_pod_label_modeldeploy_io_role",
    }


def test_rules_and_dashboard_config_maps(rendered: dict[str, list[hc.Manifest]]) -> None:
    maps = {m["metadata"]["name"]: m for m in hc.by_kind(rendered["defaults"], "ConfigMap")}
    rules = maps["md-modeldeploy-rules"]["data"]["modeldeploy-rules.yaml"]
    assert yaml.safe_load(rules) == yaml.safe_load(RULES_FILE.read_text())
    dash = maps["md-modeldeploy-dashboard"]
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["modeldeploy.json"]) == json.loads(DASHBOARD_FILE.read_text())
    assert not hc.by_kind(rendered["single-replica"], "ConfigMap")


def test_crds_in_chart_are_the_generated_ones() -> None:
    generated = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"
    in_chart = hc.CHART / "crds" / "modeldeploy.io_modeldeployments.yaml"
    assert generated.exists(), "crds/ has not been generated"
    assert in_chart.read_bytes() == generated.read_bytes(), (
        "charts/modeldeploy/crds/ is stale: run `modeldeploy crds`"
    )


def test_chart_ships_kopf_peering_crds(tmp_path: Path) -> None:
    docs = hc.template({}, tmp_path, include_crds=True)
    crds = {d["metadata"]["name"]: d for d in hc.by_kind(docs, "CustomResourceDefinition")}
    assert set(crds) == {
        "modeldeployments.modeldeploy.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    assert crds["clusterkopfpeerings.kopf.dev"]["spec"]["scope"] == "Cluster"
    assert crds["kopfpeerings.kopf.dev"]["spec"]["scope"] == "Namespaced"

"""The local cluster against itself: real kubelet, real containers of our images, real
kube-proxy, real Prometheus. Traffic goes only to addresses inside the node namespace."""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import config, probe, workloads
from e2e.cluster.api import Cluster
from e2e.cluster.procs import in_node
from e2e.cluster.sh import CommandError, run

pytestmark = pytest.mark.cluster

MODEL_LABELS = {"modeldeploy.io/name": "demo", "modeldeploy.io/slot": "blue"}


@dataclass(frozen=True)
class Served:
    namespace: str
    deployment: str
    service_ip: str
    bundles_ip: str
    bundle_sha256: str


def _pods(cluster: Cluster, ns: str, selector: str) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"])


def _ready(pod: dict[str, Any]) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _cluster_ip(cluster: Cluster, ns: str, name: str) -> str:
    return str(cluster.kubectl_json("get", "service", name, "-n", ns)["spec"]["clusterIP"])


def _get_once_routed(url: str, timeout: float = 30) -> str:
    """GET a new Service's ClusterIP: kube-proxy programs its rules a moment after the
    Service appears (until then the node answers "network unreachable")."""

    def attempt() -> str | None:
        code, body = probe.get(url, timeout=5)
        return body if code == 200 else None

    return probe.wait_for(f"GET {url}", attempt, timeout, interval=0.5)


@pytest.fixture(scope="module")
def served(cluster: Cluster) -> Iterator[Served]:
    """A restricted namespace with a bundle server and 2 replicas of our model server that
    fetch their bundle from it by ClusterIP (`modeldeploy fetch`) and serve it pinned."""
    ns = f"e2e-serve-{uuid.uuid4().hex[:6]}"
    cluster.apply(workloads.namespace(ns))
    try:
        cluster.apply(workloads.bundle_server(cluster.server_image, {"v1": "good"}), namespace=ns)
        cluster.kubectl(
            "rollout", "status", "deployment/bundles", "-n", ns, "--timeout=180s", timeout=190
        )
        bundles = _cluster_ip(cluster, ns, "bundles")
        sha = _get_once_routed(f"http://{bundles}/v1.sha256").strip()
        model = workloads.model_server(
            "demo-blue",
            cluster.server_image,
            bundle_url=f"http://{bundles}/v1.tar.gz",
            sha256=sha,
            labels=MODEL_LABELS,
        )
        svc = workloads.service("demo", MODEL_LABELS, 80, 8080)
        cluster.apply([model, svc], namespace=ns)
        cluster.kubectl(
            "rollout", "status", "deployment/demo-blue", "-n", ns, "--timeout=180s", timeout=190
        )
        yield Served(ns, "demo-blue", _cluster_ip(cluster, ns, "demo"), bundles, sha)
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_server_version_and_node_are_what_we_built(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == config.K8S_VERSION
    assert version["clientVersion"]["gitVersion"] == config.K8S_VERSION
    node = cluster.kubectl_json("get", "node", config.NODE_NAME)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == config.K8S_VERSION
    assert info["containerRuntimeVersion"].startswith("containerd://")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == config.NODE_IP
    assert node["spec"]["podCIDR"] == config.POD_CIDR


def test_two_replicas_run_ready_and_answer_on_their_pod_ips(
    cluster: Cluster, served: Served
) -> None:
    pods = _pods(cluster, served.namespace, "modeldeploy.io/slot=blue")
    assert len(pods) == 2
    pod_net = ipaddress.ip_network(config.POD_CIDR)
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert _ready(pod), pod["status"]
        ip = pod["status"]["podIP"]
        assert ipaddress.ip_address(ip) in pod_net
        code, body = probe.get(f"http://{ip}:8080/v2/health/ready", timeout=5)
        assert code == 200, body
    assert len({p["status"]["podIP"] for p in pods}) == 2


def test_service_cluster_ip_routes_to_the_ready_pods(cluster: Cluster, served: Served) -> None:
    assert ipaddress.ip_address(served.service_ip) in ipaddress.ip_network(config.SERVICE_CIDR)
    pod_ips = {
        p["status"]["podIP"] for p in _pods(cluster, served.namespace, "modeldeploy.io/slot=blue")
    }
    slices = cluster.kubectl_json(
        "get", "endpointslices", "-n", served.namespace, "-l", "kubernetes.io/service-name=demo"
    )["items"]
    ready = {
        addr
        for s in slices
        for e in s.get("endpoints") or []
        if e.get("conditions", {}).get("ready")
        for addr in e["addresses"]
    }
    assert ready == pod_ips
    _get_once_routed(f"http://{served.service_ip}/v2/health/ready")
    for _ in range(10):
        code, body = probe.get(f"http://{served.service_ip}/v2/health/ready", timeout=5)
        assert code == 200, body
    code, body = probe.get(f"http://{served.service_ip}/model-card", timeout=5)
    assert code == 200 and json.loads(body)["card"]["version"] == "v1"


def test_prometheus_discovers_both_pods_and_scrapes_their_metrics(
    cluster: Cluster, served: Served
) -> None:
    ns = served.namespace
    pod_names = {p["metadata"]["name"] for p in _pods(cluster, ns, "modeldeploy.io/slot=blue")}

    def both_up() -> list[dict[str, Any]] | None:
        result = cluster.query(f'up{{job="pods", namespace="{ns}", slot="blue"}} == 1')
        return result if len(result) == 2 else None

    up = probe.wait_for("both model pods up in Prometheus", both_up, 60, interval=1)
    assert {s["metric"]["pod"] for s in up} == pod_names
    assert {s["metric"]["modeldeployment"] for s in up} == {"demo"}
    info = cluster.wait_for_query(f'modeldeploy_model_info{{namespace="{ns}"}}')
    probe.wait_for(
        "model info from both pods",
        lambda: len(cluster.query(f'modeldeploy_model_info{{namespace="{ns}"}}')) == 2,
        30,
        interval=1,
    )
    info = cluster.query(f'modeldeploy_model_info{{namespace="{ns}"}}')
    assert {s["metric"]["pod"] for s in info} == pod_names
    # Both pods fetched the bundle from the in-cluster server and loaded the pinned model.
    assert {s["metric"]["sha256"] for s in info} == {served.bundle_sha256}
    # The server's own role label stays when the pod has no modeldeploy.io/role label.
    assert {s["metric"]["role"] for s in info} == {"stable"}
    targets = [
        t
        for t in cluster.targets()
        if t["labels"].get("namespace") == ns and t["labels"].get("slot") == "blue"
    ]
    assert sorted(t["health"] for t in targets) == ["up", "up"]


def test_pods_fetch_files_served_inside_the_cluster(cluster: Cluster, served: Served) -> None:
    """Pod -> Service ClusterIP -> bundle server pod: files come from inside, nothing else."""
    cluster.apply(
        workloads.http_get_pod(
            "get-sha", cluster.server_image, f"http://{served.bundles_ip}/v1.sha256"
        ),
        namespace=served.namespace,
    )
    try:
        probe.wait_for(
            "the pod to finish",
            lambda: (
                cluster.kubectl_json("get", "pod", "get-sha", "-n", served.namespace)["status"][
                    "phase"
                ]
                in ("Succeeded", "Failed")
            ),
            60,
            interval=1,
        )
        phase = cluster.kubectl_json("get", "pod", "get-sha", "-n", served.namespace)
        logs = cluster.kubectl("logs", "get-sha", "-n", served.namespace).stdout
        assert phase["status"]["phase"] == "Succeeded", logs
        assert logs.strip() == served.bundle_sha256
        code, archive = probe.get(f"http://{served.bundles_ip}/v1.tar.gz", timeout=10)
        assert code == 200 and len(archive) > 0
    finally:
        cluster.kubectl(
            "delete", "pod", "get-sha", "-n", served.namespace, "--wait=false", check=False
        )


def test_restricted_namespace_refuses_a_privileged_pod(cluster: Cluster, served: Served) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": cluster.server_image,
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    with pytest.raises(CommandError) as refused:
        cluster.apply(pod, namespace=served.namespace)
    assert "violates PodSecurity" in refused.value.stderr
    assert "privileged" in refused.value.stderr


def test_our_containers_run_as_non_root_on_a_read_only_root(
    cluster: Cluster, served: Served
) -> None:
    pod = _pods(cluster, served.namespace, "modeldeploy.io/slot=blue")[0]["metadata"]["name"]
    exec_ = ("exec", "-n", served.namespace, pod, "-c", "server", "--")
    status = cluster.kubectl(*exec_, "cat", "/proc/self/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split()[:2] == ["10001", "10001"]
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
    write = cluster.kubectl(*exec_, "sh", "-c", "echo x > /opt/venv/x", check=False)
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr
    # No compilers in the final image.
    which = cluster.kubectl(*exec_, "sh", "-c", "command -v gcc cc pip || true").stdout
    assert which.strip() == ""


def test_pods_and_node_have_no_way_out(cluster: Cluster, served: Served) -> None:
    """Read routing tables only (no packet is sent): no default route in a pod or the node,
    and the host's own forwarding stays off."""
    pod = _pods(cluster, served.namespace, "modeldeploy.io/slot=blue")[0]["metadata"]["name"]
    routes = cluster.kubectl(
        "exec", "-n", served.namespace, pod, "-c", "server", "--", "cat", "/proc/net/route"
    ).stdout.splitlines()[1:]
    assert routes and all(line.split()[1] != "00000000" for line in routes)
    node_routes = run(in_node(["ip", "route", "show", "default"])).stdout
    assert node_routes.strip() == ""
    guard = run(in_node(["iptables", "-w", "-S", "FORWARD"])).stdout
    assert "-j MODELDEPLOY-GUARD" in guard
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"

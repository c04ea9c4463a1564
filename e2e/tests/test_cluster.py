"""The local cluster against itself: real kubelet, real containers of our images, real
kube-proxy, real Prometheus. Traffic goes only to addresses inside the node namespace."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
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


def test_deleting_a_deployment_stops_its_containers(cluster: Cluster, namespace: str) -> None:
    sleeper = workloads.model_server("sleeper", cluster.server_image, replicas=1)
    spec = sleeper["spec"]["template"]["spec"]
    spec.pop("initContainers")
    container = spec["containers"][0]
    for key in ("readinessProbe", "livenessProbe", "args"):
        container.pop(key)
    container["command"] = [
        "python3",
        "-c",
        "import signal, time\nsignal.signal(signal.SIGTERM, lambda *a: exit(0))\ntime.sleep(3600)",
    ]
    cluster.apply(sleeper, namespace=namespace)
    cluster.kubectl(
        "rollout", "status", "deployment/sleeper", "-n", namespace, "--timeout=90s", timeout=100
    )
    pod = _pods(cluster, namespace, "app.kubernetes.io/name=sleeper")[0]
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    tasks = _ctr_tasks(cluster)
    assert cid in tasks
    pid = tasks[cid]
    assert Path(f"/proc/{pid}").exists()
    cluster.kubectl("delete", "deployment", "sleeper", "-n", namespace, "--wait=true", timeout=60)
    probe.wait_for("the container's task to go", lambda: cid not in _ctr_tasks(cluster), 60)
    probe.wait_for("the container's process to exit", lambda: not Path(f"/proc/{pid}").exists(), 30)
    probe.wait_for(
        "the pod to go", lambda: not _pods(cluster, namespace, "app.kubernetes.io/name=sleeper"), 60
    )


def _ctr_tasks(cluster: Cluster) -> dict[str, int]:
    out = run(
        [
            "ctr",
            "--address",
            str(cluster.paths.containerd_sock),
            "--namespace",
            "k8s.io",
            "tasks",
            "ls",
        ]
    ).stdout.splitlines()[1:]
    return {line.split()[0]: int(line.split()[1]) for line in out if line.split()[2] == "RUNNING"}


def _ctr_images(cluster: Cluster) -> set[str]:
    return set(
        run(
            [
                "ctr",
                "--address",
                str(cluster.paths.containerd_sock),
                "--namespace",
                "k8s.io",
                "images",
                "ls",
                "-q",
            ]
        ).stdout.split()
    )


def _pod(name: str, image: str, command: list[str], pull: str = "IfNotPresent") -> dict[str, Any]:
    pod_sec, sec = workloads.restricted_security()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "securityContext": pod_sec,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": image,
                    "imagePullPolicy": pull,
                    "command": command,
                    "securityContext": sec,
                }
            ],
        },
    }


def _container_status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    pod = cluster.kubectl_json("get", "pod", name, "-n", ns)
    statuses = pod["status"].get("containerStatuses") or [{}]
    return dict(statuses[0])


def test_a_crashing_container_restarts_into_crashloopbackoff(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(
        _pod("crasher", cluster.server_image, ["sh", "-c", "echo boom; exit 3"]),
        namespace=namespace,
    )

    def backing_off() -> dict[str, Any] | None:
        st = _container_status(cluster, namespace, "crasher")
        waiting = st.get("state", {}).get("waiting", {})
        return (
            st if waiting.get("reason") == "CrashLoopBackOff" and st["restartCount"] >= 1 else None
        )

    st = probe.wait_for("CrashLoopBackOff", backing_off, 90, interval=1)
    assert st["lastState"]["terminated"]["exitCode"] == 3
    logs = cluster.kubectl("logs", "crasher", "-n", namespace, "--previous").stdout
    assert logs.strip() == "boom"


def test_an_absent_image_fails_with_a_clear_reason(cluster: Cluster, namespace: str) -> None:
    image = "localhost/modeldeploy-absent:none"
    cluster.apply(_pod("absent", image, ["true"], pull="Never"), namespace=namespace)

    def waiting() -> dict[str, Any] | None:
        w = _container_status(cluster, namespace, "absent").get("state", {}).get("waiting", {})
        return w if w.get("reason") == "ErrImageNeverPull" else None

    w = probe.wait_for("ErrImageNeverPull", waiting, 60, interval=1)
    assert image in w["message"] and "not present" in w["message"]


def test_a_service_account_gets_only_what_its_role_grants(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    rbac = "rbac.authorization.k8s.io"
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
            {
                "apiVersion": f"{rbac}/v1",
                "kind": "Role",
                "metadata": {"name": "read-configmaps"},
                "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
                ],
            },
            {
                "apiVersion": f"{rbac}/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "read-configmaps"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        ],
        namespace=namespace,
    )
    token = cluster.kubectl(
        "create", "token", "reader", "-n", namespace, "--duration=10m"
    ).stdout.strip()
    kubeconfig = tmp_path / "reader.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": cluster.apiserver_url,
                            "certificate-authority": str(cluster.paths.pki / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": "reader", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "c",
                        "context": {"cluster": "c", "user": "reader", "namespace": namespace},
                    }
                ],
                "current-context": "c",
            }
        )
    )
    as_reader = [str(cluster.paths.kubectl()), "--kubeconfig", str(kubeconfig)]
    allowed = run([*as_reader, "get", "configmaps", "-o", "name"])
    assert "configmap/kube-root-ca.crt" in allowed.stdout
    for verb in (
        ["get", "secrets"],
        ["create", "configmap", "x", "--from-literal=a=b"],
        ["get", "pods"],
        ["get", "configmaps", "-n", "default"],
    ):
        refused = run([*as_reader, *verb], check=False)
        assert refused.returncode != 0, verb
        assert "forbidden" in refused.stderr.lower(), refused.stderr
        assert f"system:serviceaccount:{namespace}:reader" in refused.stderr


def test_helm_installs_a_trivial_chart(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    chart = tmp_path / "hello"
    (chart / "templates").mkdir(parents=True)
    # kubeVersion is checked against the apiserver's /version: the ldflags must be true.
    (chart / "Chart.yaml").write_text(
        'apiVersion: v2\nname: hello\nversion: 0.1.0\nkubeVersion: ">=1.34.0-0 <1.35.0-0"\n'
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    cluster.helm(
        "install",
        "hi",
        str(chart),
        "-n",
        namespace,
        "--set",
        "greeting=bonjour",
        "--wait",
        "--timeout",
        "60s",
    )
    cm = cluster.kubectl_json("get", "configmap", "hi-greeting", "-n", namespace)
    assert cm["data"] == {"greeting": "bonjour"}
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    listed = json.loads(cluster.helm("list", "-n", namespace, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [("hi", "deployed")]
    cluster.helm("uninstall", "hi", "-n", namespace, "--wait")
    gone = cluster.kubectl("get", "configmap", "hi-greeting", "-n", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_prometheus_loads_rule_files_added_at_runtime(cluster: Cluster) -> None:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    alert = f"E2EAlwaysFiring{name[-6:]}"
    rules = {
        "groups": [
            {
                "name": name,
                "interval": "1s",
                "rules": [
                    {
                        "alert": alert,
                        "expr": "vector(1)",
                        "for": "0s",
                        "labels": {"severity": "none"},
                    }
                ],
            }
        ]
    }
    path = cluster.add_rules(name, rules)
    try:
        assert path.parent == cluster.paths.rules_dir

        def firing() -> bool:
            alerts = cluster.prometheus_api("alerts")["alerts"]
            return any(a["labels"]["alertname"] == alert and a["state"] == "firing" for a in alerts)

        probe.wait_for(f"{alert} firing", firing, 30, interval=1)
        with pytest.raises(ValueError, match="invalid rules"):
            cluster.add_rules(
                f"{name}-bad",
                {"groups": [{"name": "x", "rules": [{"alert": "Broken", "expr": "rate(("}]}]},
            )
    finally:
        cluster.remove_rules(name)
    probe.wait_for(
        "rules removed",
        lambda: not any(g["name"] == name for g in cluster.prometheus_api("rules")["groups"]),
        30,
    )


def test_status_and_env_commands(cluster: Cluster) -> None:
    root = config.REPO_ROOT
    status = subprocess.run(
        [sys.executable, "-m", "e2e.cluster", "status"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.strip().splitlines()[-1] == "healthy"
    script = (
        f'eval "$({sys.executable} -m e2e.cluster env)" && kubectl get node '
        f'{config.NODE_NAME} -o name && echo "$MODELDEPLOY_SERVER_IMAGE" && '
        "command -v helm"
    )
    shell = subprocess.run(
        ["bash", "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert shell.returncode == 0, shell.stderr
    lines = shell.stdout.splitlines()
    assert lines[0] == f"node/{config.NODE_NAME}"
    # The image `env` names (the last build's) is in the node's containerd, ready to run.
    assert lines[1].startswith(config.SERVER_IMAGE_REPO + ":")
    assert lines[1] in _ctr_images(cluster)
    assert lines[2] == str(cluster.paths.helm())


def test_operator_metrics_job_and_role_label_from_the_pod(cluster: Cluster, namespace: str) -> None:
    """A pod annotated modeldeploy.io/operator-metrics lands in job modeldeploy-operator; a pod
    label modeldeploy.io/role becomes the target's `role` (the server's own moves aside)."""
    dep = workloads.model_server(
        "metrics", cluster.server_image, replicas=1, labels={"modeldeploy.io/role": "candidate"}
    )
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    annotations.pop("prometheus.io/scrape")
    annotations["modeldeploy.io/operator-metrics"] = "true"
    cluster.apply(dep, namespace=namespace)
    cluster.kubectl(
        "rollout", "status", "deployment/metrics", "-n", namespace, "--timeout=120s", timeout=130
    )
    up = cluster.wait_for_query(
        f'up{{job="modeldeploy-operator", namespace="{namespace}"}} == 1', timeout=60
    )
    assert len(up) == 1 and up[0]["metric"]["role"] == "candidate"
    assert not cluster.query(f'up{{job="pods", namespace="{namespace}"}}')
    info = cluster.wait_for_query(f'modeldeploy_model_info{{namespace="{namespace}"}}')
    assert info[0]["metric"]["role"] == "candidate"
    assert info[0]["metric"]["exported_role"] == "stable"

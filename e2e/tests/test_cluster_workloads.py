"""The local cluster as workloads see it: container lifecycle, images, RBAC, helm, rule
files and the harness's own commands (the served-pod tests are in test_cluster.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import config, probe, workloads
from e2e.cluster.api import Cluster
from e2e.cluster.sh import run

pytestmark = pytest.mark.cluster


def _pods(cluster: Cluster, ns: str, selector: str) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"])


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

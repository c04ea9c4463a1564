"""`helm install` into the local cluster: the operator comes up from the project's image under
the chart's RBAC in a restricted namespace, peers, and reconciles a ModelDeployment; the
plugin and the GitOps examples are checked against the same real apiserver."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helmchart as hc
import pytest
import yaml

from e2e.cluster import probe, workloads
from e2e.cluster.api import Cluster
from modeldeploy.operator import plugin

pytestmark = pytest.mark.cluster
ROOT = hc.ROOT
MODEL = "churn"


@dataclass(frozen=True)
class Install:
    namespace: str
    release: str
    service_account: str
    bundles: str  # the bundle server's ClusterIP


def _split(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    return repo, tag


def _model_deployment(install: Install, version: str, sha256: str) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": MODEL, "namespace": install.namespace},
        "spec": {
            "model": {
                "name": MODEL,
                "version": version,
                "sha256": sha256,
                "bundleURI": f"http://{install.bundles}/{version}.tar.gz",
            },
            "replicas": 1,
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
        },
    }


def _wait(what: str, check: Any, timeout: float = 240, detail: Any = None) -> Any:
    return probe.wait_for(what, check, timeout, interval=2.0, detail=detail)


def _diagnose(cluster: Cluster, install: Install) -> str:
    """What a failed wait shows: the status, the pods, the operator's last log lines."""
    ns = install.namespace
    parts = [
        cluster.kubectl(
            "get", "modeldeployment", MODEL, "-n", ns, "-o", "jsonpath={.status}", check=False
        ).stdout,
        cluster.kubectl("get", "pods", "-n", ns, check=False).stdout,
    ]
    for pod in cluster.kubectl_json("get", "pods", "-n", ns)["items"]:
        for c in pod["status"].get("initContainerStatuses", []) + pod["status"].get(
            "containerStatuses", []
        ):
            if c.get("restartCount") or pod["metadata"]["name"].startswith(install.release):
                parts.append(
                    f"--- {pod['metadata']['name']}/{c['name']}\n"
                    + cluster.kubectl(
                        "logs",
                        "-n",
                        ns,
                        pod["metadata"]["name"],
                        "-c",
                        c["name"],
                        "--tail=6",
                        check=False,
                    ).stdout
                )
    return "\n".join(parts)


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[Install]:
    suffix = uuid.uuid4().hex[:5]
    ns, release = f"md-chart-{suffix}", f"md{suffix}"
    cluster.apply(workloads.namespace(ns))  # enforces the restricted Pod Security Standard
    repo, tag = _split(cluster.operator_image)
    server_repo, server_tag = _split(cluster.server_image)
    try:
        cluster.apply(workloads.bundle_server(cluster.server_image, {"v1": "good"}), namespace=ns)
        cluster.helm(
            "install",
            release,
            str(hc.CHART),
            "-n",
            ns,
            "--set",
            "watch.scope=namespaces",
            "--set",
            f"watch.namespaces={{{ns}}}",
            "--set",
            f"image.repository={repo}",
            "--set",
            f"image.tag={tag}",
            "--set",
            f"serverImage.repository={server_repo}",
            "--set",
            f"serverImage.tag={server_tag}",
            "--set",
            f"prometheus.url={cluster.prometheus_url}",
            "--wait",
            "--timeout",
            "240s",
            timeout=300,
        )
        cluster.kubectl(
            "rollout", "status", "deployment/bundles", "-n", ns, "--timeout=180s", timeout=190
        )
        bundles = cluster.kubectl_json("get", "service", "bundles", "-n", ns)["spec"]["clusterIP"]
        yield Install(ns, release, f"{release}-modeldeploy", bundles)
    finally:
        cluster.kubectl(
            "delete", "modeldeployments", "--all", "-n", ns, "--wait=false", check=False
        )
        cluster.helm("uninstall", release, "-n", ns, "--wait", "--timeout", "60s", check=False)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def created(cluster: Cluster, installed: Install) -> dict[str, Any]:
    """A ModelDeployment of a real bundle, applied (whatever the operator makes of it)."""
    code, sha = probe.get(f"http://{installed.bundles}/v1.sha256", timeout=5)
    assert code == 200, sha
    cluster.apply(_model_deployment(installed, "v1", sha.strip()))
    return dict(cluster.kubectl_json("get", "modeldeployment", MODEL, "-n", installed.namespace))


@pytest.fixture(scope="module")
def healthy(cluster: Cluster, installed: Install, created: dict[str, Any]) -> dict[str, Any]:
    """The ModelDeployment, once the chart's operator brought it to Healthy."""

    def done() -> dict[str, Any] | None:
        obj = cluster.kubectl_json("get", "modeldeployment", MODEL, "-n", installed.namespace)
        return obj if (obj.get("status") or {}).get("phase") == "Healthy" else None

    return dict(
        _wait("ModelDeployment Healthy", done, detail=lambda: _diagnose(cluster, installed))
    )


def test_operator_replicas_run_restricted_and_peer(cluster: Cluster, installed: Install) -> None:
    pods = cluster.kubectl_json(
        "get",
        "pods",
        "-n",
        installed.namespace,
        "-l",
        f"app.kubernetes.io/instance={installed.release}",
    )["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == installed.service_account
        assert pod["spec"]["containers"][0]["image"] == cluster.operator_image
        assert all(c["ready"] for c in pod["status"]["containerStatuses"])
    labels = cluster.kubectl_json("get", "namespace", installed.namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    def both_peers() -> dict[str, Any] | None:
        peering = cluster.kubectl_json(
            "get", "kopfpeering", "modeldeploy", "-n", installed.namespace
        )
        peers = peering.get("status") or {}
        return peers if len(peers) == 2 else None

    priorities = sorted(p["priority"] for p in _wait("two peers", both_peers, 60).values())
    assert priorities == [0, 1]


def _can(cluster: Cluster, install: Install, *args: str) -> bool:
    sa = f"system:serviceaccount:{install.namespace}:{install.service_account}"
    proc = cluster.kubectl("auth", "can-i", *args, "--as", sa, check=False)
    return proc.stdout.strip() == "yes"


def test_service_account_has_exactly_the_chart_rbac(cluster: Cluster, installed: Install) -> None:
    ns = installed.namespace
    assert _can(cluster, installed, "patch", "modeldeployments.modeldeploy.io", "-n", ns)
    assert _can(cluster, installed, "patch", "modeldeployments.modeldeploy.io/status", "-n", ns)
    assert _can(cluster, installed, "create", "deployments.apps", "-n", ns)
    assert _can(cluster, installed, "patch", "pods", "-n", ns)
    assert _can(cluster, installed, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not _can(cluster, installed, "get", "secrets", "-n", ns)
    assert not _can(cluster, installed, "get", "configmaps", "-n", ns)
    assert not _can(cluster, installed, "update", "deployments.apps", "-n", ns)
    assert not _can(cluster, installed, "create", "deployments.apps", "-n", "default")
    assert not _can(cluster, installed, "list", "modeldeployments.modeldeploy.io", "-A")
    assert not _can(cluster, installed, "create", "pods", "-n", ns)
    assert not _can(cluster, installed, "delete", "namespaces")


def test_operator_reconciles_a_model_deployment(
    cluster: Cluster, installed: Install, healthy: dict[str, Any]
) -> None:
    status = healthy["status"]
    assert status["stableVersion"] == "v1" and status["stableSlot"] == "blue"
    assert status["observedGeneration"] == healthy["metadata"]["generation"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    dep = cluster.kubectl_json("get", "deployment", f"{MODEL}-blue", "-n", installed.namespace)
    assert dep["status"].get("readyReplicas") == 1
    pod_spec = dep["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["image"] == cluster.server_image


def _plugin(
    cluster: Cluster, install: Install, *argv: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = plugin.main([*argv, "-n", install.namespace, "--kubeconfig", str(cluster.kubeconfig)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plugin_status_history_and_controls(
    cluster: Cluster,
    installed: Install,
    created: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _plugin(cluster, installed, "status", MODEL, capsys=capsys)
    assert code == 0
    assert f"ModelDeployment {installed.namespace}/{MODEL}" in out
    assert "strategy canary   model churn" in out
    code, out, _ = _plugin(cluster, installed, "history", MODEL, capsys=capsys)
    assert code == 0 and MODEL in out
    code, _, err = _plugin(cluster, installed, "promote", MODEL, capsys=capsys)
    assert code == 1 and "no rollout in progress" in err
    code, out, _ = _plugin(cluster, installed, "pause", MODEL, capsys=capsys)
    assert code == 0 and "pause requested" in out
    value = out.split("modeldeploy.io/control=")[1].split(")")[0]
    obj = cluster.kubectl_json("get", "modeldeployment", MODEL, "-n", installed.namespace)
    assert obj["metadata"]["annotations"]["modeldeploy.io/control"] == value
    code, out, _ = _plugin(cluster, installed, "resume", MODEL, capsys=capsys)
    assert code == 0
    second = out.split("modeldeploy.io/control=")[1].split(")")[0]
    assert second.startswith("resume/") and second != value


def test_the_operator_acts_on_plugin_controls(
    cluster: Cluster,
    installed: Install,
    healthy: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _plugin(cluster, installed, "status", MODEL, capsys=capsys)
    assert code == 0
    assert "Phase:       Healthy" in out and "Stable:      v1 in slot blue" in out
    assert "Events:" in out  # the operator's events about this object
    code, out, _ = _plugin(cluster, installed, "pause", MODEL, capsys=capsys)
    value = out.split("modeldeploy.io/control=")[1].split(")")[0]

    def consumed() -> bool:
        got = cluster.kubectl_json("get", "modeldeployment", MODEL, "-n", installed.namespace)
        return (got.get("status") or {}).get("lastControl") == value

    _wait("the operator to read the control", consumed, 60)
    _plugin(cluster, installed, "resume", MODEL, capsys=capsys)


def test_plugin_errors_from_the_real_apiserver(
    cluster: Cluster,
    installed: Install,
    created: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _plugin(cluster, installed, "status", "nope", capsys=capsys)
    assert code == 1
    assert err == (
        f'error: modeldeployment "nope" not found in namespace '
        f'"{installed.namespace}"; it has: {MODEL}\n'
    )
    conn = plugin.connect(str(cluster.kubeconfig), None, installed.namespace)
    assert plugin.api_installed(conn)
    assert not plugin.api_installed(conn, version="v0alpha0")  # an API nobody serves
    assert "is not installed in the cluster at" in str(plugin.missing_api(conn))


def test_kubectl_finds_the_plugin(
    cluster: Cluster, installed: Install, created: dict[str, Any]
) -> None:
    env = cluster.env()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    proc = subprocess.run(
        [str(cluster.paths.kubectl()), "modeldeploy", "status", MODEL, "-n", installed.namespace],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"ModelDeployment {installed.namespace}/{MODEL}" in proc.stdout


def test_status_watch_redraws_until_interrupted(
    cluster: Cluster, installed: Install, created: dict[str, Any]
) -> None:
    cmd = [
        sys.executable,
        "-m",
        "modeldeploy.operator.plugin",
        "status",
        MODEL,
        "--watch",
        "--interval",
        "0.5",
        "-n",
        installed.namespace,
        "--kubeconfig",
        str(cluster.kubeconfig),
    ]
    header = f"ModelDeployment {installed.namespace}/{MODEL}".encode()
    # Ctrl-C as a terminal sends it: the suite may run as a background job, whose children
    # start with SIGINT ignored (and a command that inherits that rightly ignores Ctrl-C).
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    shown = b""
    try:
        # Two redraws, however long the command takes to start on a busy machine (bounded).
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 60
            while shown.count(header) < 2 and time.monotonic() < deadline:
                if not sel.select(timeout=1):
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break  # the command ended
                shown += chunk
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == plugin.EXIT_INTERRUPTED, err
    assert (shown + out).count(header) >= 2, (shown + out)[-2000:]


def test_gitops_examples_pass_server_side_validation(cluster: Cluster, installed: Install) -> None:
    kubectl = str(cluster.paths.kubectl())
    for overlay in ("overlays/staging", "overlays/production"):
        rendered = subprocess.run(
            [kubectl, "kustomize", str(ROOT / "examples" / "gitops" / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        for doc in docs:
            doc["metadata"]["namespace"] = installed.namespace
            doc["metadata"]["name"] = f"dry-{doc['metadata']['name']}"
        proc = cluster.kubectl(
            "apply",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
        )
        items = json.loads(proc.stdout)["items"]
        assert len(items) == 3
        # The apiserver filled in the schema's defaults: what the operator will do.
        for item in items:
            assert item["spec"]["analysis"]["consecutiveErrorLimit"] >= 1


def test_rules_evaluate_cleanly_in_the_clusters_prometheus(cluster: Cluster) -> None:
    """The chart's rule file, loaded into the real Prometheus that scrapes the model pods,
    evaluates every rule without an error (bad matching would show up as lastError)."""
    rules_text = (hc.CHART / "rules" / "modeldeploy-rules.yaml").read_text()
    names = {g["name"] for g in yaml.safe_load(rules_text)["groups"]}
    loaded = {g["name"] for g in cluster.prometheus_api("rules")["groups"]}
    added = None
    if not names <= loaded:
        added = f"modeldeploy-chart-{uuid.uuid4().hex[:5]}"
        cluster.add_rules(added, rules_text)
    try:

        def evaluated() -> list[dict[str, Any]] | None:
            groups = [g for g in cluster.prometheus_api("rules")["groups"] if g["name"] in names]
            rules = [r for g in groups for r in g["rules"]]
            done = groups and all(not g["lastEvaluation"].startswith("0001") for g in groups)
            return (
                rules
                if done
                and len(rules) == rules_text.count("- record:") + rules_text.count("- alert:")
                else None
            )

        rules = _wait("the chart's rules evaluated", evaluated, 90)
        for rule in rules:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    finally:
        if added:
            cluster.remove_rules(added)

"""What the scale benchmark and its test share: the fake node, the project's (fast) rules in
Prometheus, one namespace of ModelDeployments whose pods go to the fake node, the synthetic
exporter, and one operator process under an identity of its own.

The operator's requests are counted by the apiserver itself: its ServiceAccount is the only
subject of a few FlowSchemas (one per verb: list, watch, get, patch, create, then the rest),
so `apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}` on the apiserver's
/metrics is the count of the operator's requests by verb. (`apiserver_request_total` has no
user or user-agent label, and audit logging would need another apiserver command line.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e import stack as st
from e2e.cluster import config, fakenode, probe
from e2e.cluster.api import Cluster
from e2e.daemon import stop
from e2e.scale.exporter import MODEL

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"
SA = "modeldeploy-scale-operator"
VERBS = ("list", "watch", "get", "patch", "create", "update", "delete")
FLOW_PREFIX = "modeldeploy-scale-"
SHA = "0" * 64  # never checked: the fake node's pods run nothing
ANALYSIS_INTERVAL = "10s"  # a third of the CRD default (30 s): three times the samples


def model_deployment(
    name: str, namespace: str, version: str, analysis: str, prometheus_url: str = ""
) -> dict[str, Any]:
    """A canary of one step (50 %, then an analysis of ``analysis``) at the CRD's defaults
    otherwise (the four default alerts, consecutiveErrorLimit); ``prometheus_url`` instead of
    the operator's default Prometheus."""
    checks: dict[str, Any] = {"interval": ANALYSIS_INTERVAL}
    if prometheus_url:
        checks["prometheusURL"] = prometheus_url
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {
                "name": MODEL,
                "version": version,
                "bundleURI": f"http://127.0.0.1:9/never-fetched/{version}.tar.gz",
                "sha256": SHA,
            },
            # One pod per slot: the fake node's pods cost the apiserver, kwok and Prometheus;
            # the analysis reads the same per-role series whatever the replica count.
            "replicas": 1,
            # The only way onto the fake node (and off the real one): see e2e.cluster.fakenode.
            "server": {
                "resources": {
                    "requests": {config.FAKE_NODE_RESOURCE: "1"},
                    "limits": {config.FAKE_NODE_RESOURCE: "1"},
                }
            },
            "strategy": st.canary(50, analysis=analysis),
            "trafficProvider": {"replicas": {}},
            "analysis": checks,
        },
    }


def flow_schemas(namespace: str) -> list[dict[str, Any]]:
    subject = [{"kind": "ServiceAccount", "serviceAccount": {"name": SA, "namespace": namespace}}]
    every = {"apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"], "clusterScope": True}
    out = []
    for i, verb in enumerate((*VERBS, "other")):
        rule: dict[str, Any] = {"subjects": subject}
        if verb == "other":
            rule["resourceRules"] = [{**every, "verbs": ["*"]}]
            rule["nonResourceRules"] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
        else:
            rule["resourceRules"] = [{**every, "verbs": [verb]}]
        out.append(
            {
                "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                "kind": "FlowSchema",
                "metadata": {"name": FLOW_PREFIX + verb},
                "spec": {
                    "priorityLevelConfiguration": {"name": "workload-high"},
                    "matchingPrecedence": 500 + i,
                    "distinguisherMethod": {"type": "ByUser"},
                    "rules": [rule],
                },
            }
        )
    return out


def identity(cluster: Cluster, namespace: str, folder: Path) -> Path:
    """A ServiceAccount for the operator (cluster-admin: the benchmark measures load, not
    RBAC; the chart's least-privilege roles are tested elsewhere) and a kubeconfig with its
    token."""
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{SA}-{namespace}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": namespace}],
            },
            *flow_schemas(namespace),
        ],
        namespace=namespace,
    )
    token = cluster.kubectl("create", "token", SA, "-n", namespace, "--duration", "4h")
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": config.APISERVER_URL,
                    "certificate-authority": str(cluster.paths.pki / "ca.crt"),
                },
            }
        ],
        "users": [{"name": SA, "user": {"token": token.stdout.strip()}}],
        "contexts": [{"name": "scale", "context": {"cluster": "local", "user": SA}}],
        "current-context": "scale",
    }
    path = folder / "operator.kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    path.chmod(0o600)
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Operator:
    proc: subprocess.Popen[bytes]
    metrics_port: int
    log: Path

    def metrics(self) -> str:
        code, body = probe.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10)
        if code != 200:
            raise RuntimeError(f"operator metrics: {code} {body[:200]}")
        return body

    def usage(self) -> tuple[float, float]:
        """(RSS in MiB, CPU seconds user + system) from /proc."""
        import os

        pid = self.proc.pid
        rss = 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return rss, (int(fields[11]) + int(fields[12])) / ticks


def start_operator(cluster: Cluster, namespace: str, kubeconfig: Path, folder: Path) -> Operator:
    port, live = _free_port(), _free_port()
    env = {
        **cluster.env(),
        "KUBECONFIG": str(kubeconfig),
        "PYTHONWARNINGS": "ignore",
    }
    cmd = [
        sys.executable,
        "-m",
        "modeldeploy",
        "operator",
        "--namespace",
        namespace,
        "--prometheus-url",
        cluster.prometheus_url,
        "--server-image",
        cluster.server_image,
        "--metrics-port",
        str(port),
        "--liveness",
        f"http://127.0.0.1:{live}/healthz",
    ]
    log = folder / "operator.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    op = Operator(proc, port, log)

    def live_ok() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"operator exited: {log.read_text()[-2000:]}")
        return probe.get(f"http://127.0.0.1:{live}/healthz", timeout=2)[0] == 200

    probe.wait_for("operator liveness", live_ok, 60)
    return op


def start_exporter(faults: Path, folder: Path) -> subprocess.Popen[bytes]:
    log = open(folder / "exporter.log", "ab")  # noqa: SIM115 (the process keeps it)
    proc = subprocess.Popen(
        [sys.executable, "-m", "e2e.scale.exporter", "--faults", str(faults)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://{config.HOST_IP}:{config.SCALE_EXPORTER_PORT}/metrics/a/b/c/d/e"
    probe.wait_for("scale exporter", lambda: probe.get(url, timeout=2)[0] == 200, 30)
    return proc


@dataclass
class ScaleEnv:
    cluster: Cluster
    namespace: str
    folder: Path
    faults: Path
    operator: Operator
    api_start: dict[str, float]  # the operator's requests by verb before it started

    def set_faults(self, kinds: dict[str, str]) -> None:
        tmp = self.faults.with_suffix(".tmp")
        tmp.write_text(json.dumps({f"{self.namespace}/{k}": v for k, v in kinds.items()}))
        tmp.replace(self.faults)


@contextmanager
def scale_env(cluster: Cluster, folder: Path, label: str = "scale") -> Iterator[ScaleEnv]:
    """Everything up for one run; everything of the run removed afterwards (the fake node
    and kwok stay, as an option of the cluster that was asked for)."""
    fakenode.ensure(cluster.paths)
    # as tests/operator/test_operator_cluster.py does: the CRD of this tree, left installed
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.wait_established("modeldeployments.modeldeploy.io")
    ns = f"md-{label}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", ns)
    st.load_rules(cluster, ns)
    faults = folder / "faults.json"
    faults.write_text("{}")
    exporter = operator = None
    try:
        exporter = start_exporter(faults, folder)
        kubeconfig = identity(cluster, ns, folder)
        from e2e.scale.run import api_counts

        api_start = api_counts(cluster)  # cumulative over earlier runs; none on a new cluster
        operator = start_operator(cluster, ns, kubeconfig, folder)
        yield ScaleEnv(cluster, ns, folder, faults, operator, api_start)
    finally:
        if operator is not None:  # it removes its finalizers; whatever is left, we do
            cluster.kubectl("delete", "modeldeployments", "--all", "-n", ns, "--wait=false")
            with suppress(TimeoutError):
                wait("ModelDeployments deleted", lambda: not _left(cluster, ns), 120)
        stop(operator.proc if operator else None, grace=30)
        stop(exporter, grace=30)
        for obj in _left(cluster, ns):
            cluster.kubectl(
                "patch",
                "-n",
                ns,
                obj,
                "--type",
                "merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
            )
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        cluster.kubectl("delete", "clusterrolebinding", f"{SA}-{ns}", check=False)
        names = [f"flowschema/{FLOW_PREFIX}{v}" for v in (*VERBS, "other")]
        cluster.kubectl("delete", *names, "--ignore-not-found", check=False)
        with suppress(OSError, RuntimeError):
            st.unload_rules(cluster, ns)


def _left(cluster: Cluster, namespace: str) -> list[str]:
    out = cluster.kubectl("get", "modeldeployments", "-n", namespace, "-o", "name", check=False)
    return out.stdout.split()


def wait(what: str, ok: Any, timeout: float, every: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)

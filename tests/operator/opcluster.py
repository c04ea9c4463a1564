"""The operator against the real local cluster, shared by the operator's cluster tests: the
operator as a subprocess (the same ``modeldeploy operator`` command the image runs) watching
one restricted namespace of its own, and the helpers to drive it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.cluster import probe, workloads
from e2e.cluster.api import Cluster
from e2e.stack import load_rules, unload_rules, wait

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Operator:
    """``modeldeploy operator`` as a subprocess that a test may kill and start again."""

    cluster: Cluster
    namespace: str
    log: Path
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    liveness_port: int = 0

    def start(self) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        env = {**self.cluster.env(), "PYTHONWARNINGS": "ignore"}
        cmd = [
            sys.executable,
            "-m",
            "modeldeploy",
            "operator",
            "--namespace",
            self.namespace,
            "--prometheus-url",
            self.cluster.prometheus_url,
            "--server-image",
            self.cluster.server_image,
            "--resync-seconds",
            "1",
            "--analysis-interval",
            "2",
            "--metrics-port",
            str(self.metrics_port),
            "--liveness",
            f"http://127.0.0.1:{self.liveness_port}/healthz",
            *self.extra,
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        wait("operator liveness", lambda: self._live(), timeout=60)

    def _live(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited: {self.log.read_text()[-3000:]}")
        try:
            return probe.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        return probe.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5)[1]


@dataclass
class Env:
    cluster: Cluster
    namespace: str
    bundles: str  # http://CLUSTER-IP
    sha: dict[str, str]
    operator: Operator

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> Any:
        return self.cluster.kubectl(*args, "-n", self.namespace, check=check, input=input)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        res = self.kubectl("get", kind, name, "-o", "json", check=False)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def status(self, name: str) -> dict[str, Any]:
        return (self.get("modeldeployment", name) or {}).get("status") or {}

    def manifest(
        self, name: str, version: str, strategy: dict[str, Any], replicas: int = 1, **spec: Any
    ) -> dict[str, Any]:
        return {
            "apiVersion": "modeldeploy.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "model": {
                    "name": "incident",
                    "version": version,
                    "bundleURI": f"{self.bundles}/{version}.tar.gz",
                    "sha256": self.sha[version],
                },
                "replicas": replicas,
                "strategy": strategy,
                # A sample every 2 s (not 30 s) so a test takes seconds; the rest defaults.
                "analysis": {"interval": "2s"},
                "progressDeadlineSeconds": 240,
                **spec,
            },
        }

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def wait_phase(
        self, name: str, phase: str, timeout: float = 240, **expect: Any
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status(name)
            ok = st.get("phase") == phase and all(st.get(k) == v for k, v in expect.items())
            return st if ok else None

        try:
            return wait(f"{name} {phase} {expect}", check, timeout)
        except AssertionError as exc:
            st = self.status(name)
            keys = (
                "phase",
                "message",
                "currentStep",
                "canaryWeight",
                "analysis",
                "consecutiveErrors",
                "history",
            )
            raise AssertionError(
                f"{exc}; status: {json.dumps({k: st.get(k) for k in keys})}"
            ) from None

    def control(self, name: str, value: str) -> None:
        self.kubectl(
            "annotate", "modeldeployment", name, f"modeldeploy.io/control={value}", "--overwrite"
        )

    def pods(self, name: str, slot: str) -> list[dict[str, Any]]:
        out = self.kubectl(
            "get",
            "pods",
            "-l",
            f"modeldeploy.io/name={name},modeldeploy.io/slot={slot}",
            "-o",
            "json",
        )
        return [
            p for p in json.loads(out.stdout)["items"] if not p["metadata"].get("deletionTimestamp")
        ]

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.kubectl(
            "get",
            "events",
            "--field-selector",
            f"involvedObject.name={name},involvedObject.kind=ModelDeployment",
            "-o",
            "json",
        )
        return list(json.loads(out.stdout)["items"])

    def replicas(self, name: str) -> dict[str, int]:
        out = {}
        for slot in ("blue", "green"):
            dep = self.get("deployment", f"{name}-{slot}")
            if dep:
                out[slot] = dep["spec"]["replicas"]
        return out


@contextlib.contextmanager
def operator_env(cluster: Cluster, log: Path, start: bool = True) -> Iterator[Env]:
    """A restricted namespace with a bundle server (v1, v2 good; v3 drifted) and an operator
    watching it; everything is deleted afterwards."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.wait_established("modeldeployments.modeldeploy.io")
    ns = f"md-op-{uuid.uuid4().hex[:6]}"
    cluster.apply(workloads.namespace(ns))
    operator = Operator(cluster, ns, log)
    try:
        # The chart's rules (fast variant): every default alert must be a loaded rule, or
        # no analysis passes (evidence or no promotion).
        load_rules(cluster, ns)
        cluster.apply(
            workloads.bundle_server(
                cluster.server_image, {"v1": "good", "v2": "good", "v3": "drifted"}
            ),
            namespace=ns,
        )
        cluster.kubectl(
            "rollout", "status", "deployment/bundles", "-n", ns, "--timeout=180s", timeout=190
        )
        ip = cluster.kubectl_json("get", "service", "bundles", "-n", ns)["spec"]["clusterIP"]
        sha = {}
        for v in ("v1", "v2", "v3"):

            def fetched(v: str = v) -> str | None:
                try:
                    code, body = probe.get(f"http://{ip}/{v}.sha256", timeout=5)
                except OSError:
                    return None
                return body.strip() if code == 200 else None

            sha[v] = wait(f"bundle digest {v}", fetched, timeout=60)
        if start:
            operator.start()
        yield Env(cluster, ns, f"http://{ip}", sha, operator)
    finally:
        cluster.kubectl(
            "delete", "modeldeployments", "--all", "-n", ns, "--wait=false", check=False
        )
        operator.stop()
        if os.environ.get("MODELDEPLOY_SHOW_OPERATOR_LOG"):
            print(log.read_text()[-20000:])
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        unload_rules(cluster, ns)


CANARY = {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "3s"}}]}}

"""The running cluster as tests and other harness code see it.

A `Cluster` carries the addresses, image names and credentials, runs kubectl and helm with
the cluster's kubeconfig, queries Prometheus, and adds rule files to the running Prometheus.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from . import config, probe
from .config import Paths
from .images import current_image_set
from .sh import run

_RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Cluster:
    paths: Paths
    kubeconfig: Path
    apiserver_url: str
    prometheus_url: str
    node_ip: str
    node_name: str
    server_image: str
    operator_image: str
    pause_image: str

    @classmethod
    def from_paths(cls, paths: Paths) -> Cluster:
        images = current_image_set(paths)
        return cls(
            paths=paths,
            kubeconfig=paths.kubeconfig,
            apiserver_url=config.APISERVER_URL,
            prometheus_url=config.PROMETHEUS_URL,
            node_ip=config.NODE_IP,
            node_name=config.NODE_NAME,
            server_image=images.server.ref,
            operator_image=images.operator.ref,
            pause_image=images.pause.ref,
        )

    # ------------------------------------------------------------ tools

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should talk to this cluster (kubectl, helm, ...)."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = os.pathsep.join(
            [str(self.paths.k8s_bin), str(self.paths.helm_bin), env.get("PATH", "")]
        )
        env["PROMETHEUS_URL"] = self.prometheus_url
        return env

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> CompletedProcess[str]:
        return run(
            [str(self.paths.kubectl()), "--kubeconfig", str(self.kubeconfig), *args],
            check=check,
            input=input.encode() if input is not None else None,
            timeout=timeout,
        )

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Until the apiserver serves a CRD just applied. Polled: `kubectl wait
        --for=condition=Established` fails at once on a CRD whose status is not written yet."""
        path = "jsonpath={.status.conditions[?(@.type=='Established')].status}"
        probe.wait_for(
            f"{crd} established",
            lambda: self.kubectl("get", "crd", crd, "-o", path, check=False).stdout == "True",
            timeout,
            interval=0.5,
        )

    def apply(
        self, manifest: dict[str, Any] | list[dict[str, Any]], namespace: str | None = None
    ) -> CompletedProcess[str]:
        items = manifest if isinstance(manifest, list) else [manifest]
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=doc)

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> CompletedProcess[str]:
        return run(
            [str(self.paths.helm()), "--kubeconfig", str(self.kubeconfig), *args],
            check=check,
            env=self.env(),
            timeout=timeout,
        )

    # ------------------------------------------------------------ Prometheus

    def prometheus_api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        data = probe.get_json(f"{self.prometheus_url}/api/v1/{path}{query}", timeout=10)
        if data.get("status") != "success":
            raise RuntimeError(f"Prometheus {path}: {data}")
        return data["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the result vector."""
        return list(self.prometheus_api("query", query=promql)["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.prometheus_api("targets", state="active")["activeTargets"])

    def add_rules(self, name: str, rules: str | dict[str, Any], timeout: float = 30) -> Path:
        """Validate a rule file with promtool, put it where Prometheus loads rules, reload,
        and wait until Prometheus reports its groups. Returns the file's path."""
        if not _RULE_NAME.match(name):
            raise ValueError(f"rule file name {name!r}: use lowercase letters, digits, . _ -")
        text = rules if isinstance(rules, str) else json.dumps(rules, indent=2)
        target = self.paths.rules_dir / f"{name}.yml"
        staged = self.paths.rules_dir / f".{name}.yml.new"
        staged.write_text(text)
        check = run([str(self.paths.promtool()), "check", "rules", str(staged)], check=False)
        if check.returncode != 0:
            staged.unlink()
            raise ValueError(f"invalid rules {name}: {check.stdout}{check.stderr}")
        staged.rename(target)
        self.reload_prometheus()
        probe.wait_for(f"rules {name} loaded", lambda: self._rules_loaded(target), timeout)
        return target

    def remove_rules(self, name: str) -> None:
        (self.paths.rules_dir / f"{name}.yml").unlink(missing_ok=True)
        self.reload_prometheus()

    def reload_prometheus(self) -> None:
        code, body = probe.post(f"{self.prometheus_url}/-/reload")
        if code != 200:
            raise RuntimeError(f"Prometheus reload: {code} {body}")

    def _rules_loaded(self, path: Path) -> bool:
        groups = self.prometheus_api("rules")["groups"]
        return any(g.get("file") == str(path) for g in groups)

    def wait_for_query(self, promql: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll until an instant query returns a non-empty vector (bounded in time)."""
        return probe.wait_for(
            f"Prometheus query {promql}", lambda: self.query(promql), timeout, interval=1.0
        )


def wait_rollout(cluster: Cluster, kind_name: str, namespace: str, timeout: int = 120) -> None:
    cluster.kubectl(
        "rollout",
        "status",
        kind_name,
        "-n",
        namespace,
        f"--timeout={timeout}s",
        timeout=timeout + 10,
    )

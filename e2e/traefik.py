"""Traefik as a real gateway on the local cluster: its CRDs, the Gateway API's standard CRDs,
least-privilege RBAC, one restricted pod, its Service, a GatewayClass and a Gateway.

The binary and its image come from the harness (`python -m e2e.cluster build --only
traefik`; `install` builds them on first use). The CRD and RBAC definitions are read from
Traefik's own module (the wrapper in e2e/gobuild/traefik pins v3.6.12) and the Gateway API
CRDs from sigs.k8s.io/gateway-api, so nothing here is copied by hand. `install` is
idempotent; `uninstall` removes what it added (CRDs only if it created them).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from e2e.cluster import config
from e2e.cluster.api import Cluster, wait_rollout
from e2e.cluster.config import Paths
from e2e.stack import wait
from e2e.traffic import check_address, example_rows, predict
from modeldeploy.server import contract as c

NAMESPACE = "modeldeploy-gateway"
NAME = "traefik"
GATEWAY_CLASS = "modeldeploy-traefik"
GATEWAY = "gateway"
PORT = 8000  # the entrypoint; the Gateway's listener port must be the same
PING_PORT = 8080  # Traefik's own `traefik` entrypoint, where --ping answers
CONTROLLER = "traefik.io/gateway-controller"
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api@v1.4.1"
TRAEFIK_MODULE = f"github.com/traefik/traefik/v3@{config.TRAEFIK_VERSION}"
DOCS = "docs/content/reference/dynamic-configuration"
UID = 65532


def module_dir(module: str, gomodcache: Path | None = None) -> Path:
    """The folder of ``module`` (``go mod download``: from the module cache when it is there)."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    if gomodcache:
        env["GOMODCACHE"] = str(gomodcache)
    out = subprocess.run(
        ["go", "mod", "download", "-json", module],
        cwd=config.GOBUILD_DIR / "traefik",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return Path(json.loads(out)["Dir"])


def _docs(name: str) -> list[dict[str, Any]]:
    path = module_dir(TRAEFIK_MODULE, Paths.default().gomodcache) / DOCS / name
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def crd_files() -> list[Path]:
    """Traefik's CRDs, then the Gateway API standard channel's."""
    traefik = module_dir(TRAEFIK_MODULE, Paths.default().gomodcache)
    gwapi = module_dir(GATEWAY_API_MODULE) / "config" / "crd" / "standard"
    return [traefik / DOCS / "kubernetes-crd-definition-v1.yml", *sorted(gwapi.glob("*.yaml"))]


def rbac_rules() -> list[dict[str, Any]]:
    """The rules of Traefik's two ClusterRoles (CRD and Gateway providers), minus what this
    set-up never uses: `pods get` (only for OpenTelemetry attributes) and the Ingress
    provider's status writes. Traefik watches every namespace (routes come from all of
    them), so the rules stay cluster-wide; everything else it owns is namespaced."""
    rules: list[dict[str, Any]] = []
    for name in ("kubernetes-crd-rbac.yml", "kubernetes-gateway-rbac.yml"):
        for doc in _docs(name):
            if doc["kind"] != "ClusterRole":
                continue
            for rule in doc["rules"]:
                if rule["resources"] == ["pods"] or rule["resources"] == ["ingresses/status"]:
                    continue
                if rule not in rules:
                    rules.append(rule)
    return rules


def _restricted() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def manifests(image: str, rules: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Traefik's objects in apply order (``rules``: its ClusterRole's, by default Traefik's)."""
    labels = {"app.kubernetes.io/name": NAME}
    meta = {"name": NAME, "namespace": NAMESPACE, "labels": labels}
    args = [
        f"--entryPoints.web.address=:{PORT}",
        f"--entryPoints.traefik.address=:{PING_PORT}",
        "--providers.kubernetesgateway=true",
        "--providers.kubernetescrd=true",
        "--ping",
        # Never reach out of the cluster (both default to true).
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
    ]
    pod = {
        "serviceAccountName": NAME,
        "automountServiceAccountToken": True,  # the providers watch the apiserver
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": NAME,
                "image": image,
                "imagePullPolicy": "Never",
                "args": args,
                "ports": [
                    {"name": "web", "containerPort": PORT},
                    {"name": "ping", "containerPort": PING_PORT},
                ],
                "readinessProbe": {
                    "httpGet": {"path": "/ping", "port": PING_PORT},
                    "periodSeconds": 2,
                },
                "resources": {
                    "requests": {"cpu": "20m", "memory": "64Mi"},
                    "limits": {"memory": "512Mi"},
                },
                "securityContext": _restricted(),
            }
        ],
    }
    restricted = {f"pod-security.kubernetes.io/{k}": "restricted" for k in ("enforce", "warn")}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": restricted},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta,
            "automountServiceAccountToken": False,  # only Traefik's own pod mounts it
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"{NAMESPACE}-{NAME}", "labels": labels},
            "rules": rbac_rules() if rules is None else rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{NAMESPACE}-{NAME}", "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{NAMESPACE}-{NAME}",
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": labels,
                "ports": [{"name": "web", "port": PORT, "targetPort": "web"}],
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS, "labels": labels},
            "spec": {"controllerName": CONTROLLER},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": "web",
                        "port": PORT,
                        "protocol": "HTTP",
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
    ]


@dataclass(frozen=True)
class Gateway:
    """A running Traefik: its Service address and the CRDs `install` created."""

    cluster: Cluster
    service_ip: str
    added_crds: tuple[str, ...]

    @property
    def parent_ref(self) -> dict[str, Any]:
        return {"name": GATEWAY, "namespace": NAMESPACE, "sectionName": "web"}


def _crd_names(path: Path) -> list[str]:
    return [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d]


def _condition(cluster: Cluster, *args: str, kind: str) -> str:
    path = f"jsonpath={{.status.conditions[?(@.type=='{kind}')].status}}"
    return cluster.kubectl("get", *args, "-o", path, check=False).stdout.strip()


def _crd_present(cluster: Cluster, name: str) -> bool:
    """Whether CRD ``name`` exists and stays: one still being deleted (the last uninstall's,
    not done yet) is waited out and counts as missing, or Traefik would start watching an
    API that then disappears under it."""
    res = cluster.kubectl("get", "crd", name, "-o", "json", check=False)
    if res.returncode:
        return False
    if not json.loads(res.stdout)["metadata"].get("deletionTimestamp"):
        return True
    cluster.kubectl("wait", "--for=delete", f"crd/{name}", "--timeout=120s", timeout=150)
    return False


def install(cluster: Cluster, timeout: int = 180) -> Gateway:
    """Everything above, in order (CRDs first, established before anything uses them)."""
    from e2e.cluster.images import ensure_traefik_image
    from e2e.cluster.lifecycle import ensure_images

    image = ensure_traefik_image(cluster.paths)
    ensure_images(cluster.paths, (image,))
    added: list[str] = []
    for path in crd_files():
        names = _crd_names(path)
        missing = [n for n in names if not _crd_present(cluster, n)]
        if missing:
            cluster.kubectl("apply", "--server-side", "-f", str(path))
            added += missing
    for crd in added:
        wait(
            f"{crd} established",
            lambda crd=crd: _condition(cluster, "crd", crd, kind="Established") == "True",
            60,
        )
    cluster.apply(manifests(image.ref))
    wait_rollout(cluster, f"deployment/{NAME}", NAMESPACE, timeout=timeout)
    wait(
        "the Gateway programmed by Traefik",
        lambda: (
            _condition(cluster, "gateway", GATEWAY, "-n", NAMESPACE, kind="Programmed") == "True"
        ),
        60,
    )
    ip = cluster.kubectl_json("get", "service", NAME, "-n", NAMESPACE)["spec"]["clusterIP"]
    return Gateway(cluster, str(ip), tuple(added))


def uninstall(gateway: Gateway) -> None:
    """Remove Traefik and its cluster-wide objects, then the CRDs `install` created."""
    cluster = gateway.cluster
    name = f"{NAMESPACE}-{NAME}"
    cluster.kubectl(
        "delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s", timeout=150
    )
    cluster.kubectl("delete", "gatewayclass", GATEWAY_CLASS, "--ignore-not-found", check=False)
    for kind in ("clusterrolebinding", "clusterrole"):
        cluster.kubectl("delete", kind, name, "--ignore-not-found", check=False)
    if gateway.added_crds:
        cluster.kubectl(
            "delete", "crd", *gateway.added_crds, "--timeout=120s", check=False, timeout=150
        )


# --- what the gateway tests share: a route's status, requests through the gateway, the
# --- model servers' own request counters


@contextmanager
def installed(cluster: Cluster) -> Iterator[Gateway]:
    """Traefik for the length of a ``with`` (a test module's fixture), uninstalled after."""
    gateway = install(cluster)
    try:
        yield gateway
    finally:
        uninstall(gateway)


def diagnostics(gateway: Gateway) -> str:
    """What a failed gateway test needs to say: every HTTPRoute and TraefikService in the
    cluster, and the end of Traefik's log."""
    cluster = gateway.cluster
    routes = cluster.kubectl("get", "httproutes,traefikservices", "-A", "-o", "wide", check=False)
    log = cluster.kubectl(
        "logs", f"deployment/{NAME}", "-n", NAMESPACE, "--tail=60", check=False, timeout=30
    )
    return f"routes:\n{routes.stdout}{routes.stderr}\nTraefik's log:\n{log.stdout}{log.stderr}"


def route_accepted(cluster: Cluster, namespace: str, name: str) -> bool:
    """Traefik's controller accepted the HTTPRoute's current generation and resolved every
    backend (its status names the generation it read)."""
    obj = cluster.kubectl_json("get", "httproute", name, "-n", namespace)
    gen = obj["metadata"]["generation"]
    for parent in (obj.get("status") or {}).get("parents") or []:
        if parent.get("controllerName") != CONTROLLER:
            continue
        conds = {
            x["type"]: x["status"]
            for x in parent.get("conditions") or []
            if x.get("observedGeneration") == gen
        }
        return bool(conds.get("Accepted") == conds.get("ResolvedRefs") == "True")
    return False


def send(
    gateway: Gateway, count: int, hostname: str | None = None
) -> tuple[Counter[str], list[str]]:
    """``count`` requests to the gateway, one after the other, each on a new connection,
    none retried: the versions that answered and the errors (refused, reset, timed out or
    any answer but 200)."""
    answers: Counter[str] = Counter()
    errors: list[str] = []
    for i in range(count):
        try:
            version, _ = predict(
                gateway.service_ip,
                example_rows(1, i, False),
                port=PORT,
                timeout=5,
                hostname=hostname,
            )
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        else:
            answers[version] += 1
    return answers, errors


def requests_total(cluster: Cluster, namespace: str, selector: str) -> float:
    """The sum of ``modeldeploy_requests_total`` over the pods ``selector`` picks, each read
    at its own address (inside the cluster's pod range)."""
    pods = cluster.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"]
    ips = [p["status"]["podIP"] for p in pods if p["status"].get("podIP")]
    assert ips, f"no pod with an address for {selector}"
    total = 0.0
    for ip in ips:
        url = f"http://{check_address(ip)}:{c.DEFAULT_PORT}{c.METRICS_PATH}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        total += sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((c.METRIC_REQUESTS + "{", c.METRIC_REQUESTS + " "))
        )
    return total


def settled_total(cluster: Cluster, namespace: str, selector: str) -> float:
    """``requests_total`` once it has stopped moving (mirrored copies arrive asynchronously;
    bounded: 30 s)."""
    last = requests_total(cluster, namespace, selector)
    for _ in range(30):
        time.sleep(1)
        now = requests_total(cluster, namespace, selector)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the request counter of {selector} still moving: {last}")

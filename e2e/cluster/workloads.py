"""Manifests the cluster's tests (and demos) run: all from our own images, all restricted.

A bundle server serves model bundles from inside the cluster (nothing outside is ever
reached): the example bundles it builds at start, or the files a test built and gave it; pods
reach it by its Service's ClusterIP (no cluster DNS needed).
"""

from __future__ import annotations

import base64
from typing import Any

from modeldeploy.server import contract

Manifest = dict[str, Any]
RESTRICTED_NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
BUNDLE_PORT = 8000


def restricted_security() -> tuple[Manifest, Manifest]:
    """(pod securityContext, container securityContext) that the restricted PSS admits."""
    pod = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }
    return pod, container


def namespace(name: str, restricted: bool = True) -> Manifest:
    labels = dict(RESTRICTED_NAMESPACE_LABELS) if restricted else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _container(name: str, image: str, args: list[str], **extra: Any) -> Manifest:
    _, sec = restricted_security()
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "securityContext": sec,
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        **extra,
    }


def _deployment(
    name: str,
    labels: dict[str, str],
    replicas: int,
    pod_spec: Manifest,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    pod_sec, _ = restricted_security()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations or {}},
                "spec": {
                    "securityContext": pod_sec,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 5,
                    **pod_spec,
                },
            },
        },
    }


def service(name: str, selector: dict[str, str], port: int, target_port: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": target_port}],
        },
    }


def bundle_server(image: str, versions: dict[str, str], name: str = "bundles") -> list[Manifest]:
    """Deployment + Service serving example bundles `<version>.tar.gz` (variant per version)
    and their digests `<version>.sha256` over HTTP, built at start by an init container."""
    build = " && ".join(
        f"modeldeploy example-bundle /srv/{v}.tar.gz --version {v} --variant {variant}"
        f" > /srv/{v}.sha256"
        for v, variant in versions.items()
    )
    labels = {"app.kubernetes.io/name": name}
    volume = [{"name": "srv", "mountPath": "/srv"}]
    pod = {
        "initContainers": [
            _container(
                "build",
                image,
                ["-c", build],
                command=["sh"],
                volumeMounts=[*volume, {"name": "tmp", "mountPath": "/tmp"}],
            )
        ],
        "containers": [_http_files(image, volume)],
        "volumes": [{"name": "srv", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    return [_deployment(name, labels, 1, pod), service(name, labels, 80, BUNDLE_PORT)]


def _http_files(image: str, mounts: list[Manifest]) -> Manifest:
    """The container that serves /srv over HTTP (Python's http.server) on BUNDLE_PORT."""
    return _container(
        "http",
        image,
        ["-m", "http.server", str(BUNDLE_PORT), "--bind", "0.0.0.0", "--directory", "/srv"],
        command=["python3"],
        volumeMounts=mounts,
        ports=[{"name": "http", "containerPort": BUNDLE_PORT}],
        readinessProbe={"tcpSocket": {"port": BUNDLE_PORT}, "periodSeconds": 1},
    )


def bundle_files_server(
    image: str, files: dict[str, bytes], name: str = "bundles"
) -> list[Manifest]:
    """Deployment + Service serving the given files (bundles a test built itself, e.g.
    `v1.tar.gz` and `v1.sha256`) over HTTP, from a ConfigMap mounted read-only. A ConfigMap
    holds at most about 1 MiB: enough for small models' bundles."""
    labels = {"app.kubernetes.io/name": name}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-files", "labels": labels},
        "binaryData": {f: base64.b64encode(data).decode() for f, data in files.items()},
    }
    pod = {
        "containers": [
            _http_files(image, [{"name": "srv", "mountPath": "/srv", "readOnly": True}])
        ],
        "volumes": [{"name": "srv", "configMap": {"name": f"{name}-files"}}],
    }
    return [
        config_map,
        _deployment(name, labels, 1, pod),
        service(name, labels, 80, BUNDLE_PORT),
    ]


def model_server(
    name: str,
    image: str,
    bundle_url: str | None = None,
    sha256: str | None = None,
    replicas: int = 2,
    labels: dict[str, str] | None = None,
    role: str = "stable",
    version: str = "v1",
) -> Manifest:
    """A Deployment of our model server; readiness and liveness are the server's own health
    endpoints; Prometheus scrapes it.

    With `bundle_url` (and its pinned `sha256`), the init container runs `modeldeploy fetch`
    against an in-cluster bundle server; without it, the init container builds the example
    bundle `version` in the pod and the server pins the digest that build printed.
    """
    labels = {"app.kubernetes.io/name": name, **(labels or {})}
    port = contract.DEFAULT_PORT
    work = [{"name": "work", "mountPath": "/work"}, {"name": "tmp", "mountPath": "/tmp"}]
    flags = [contract.FLAG_HOST, "0.0.0.0", contract.FLAG_PORT, str(port), contract.FLAG_ROLE, role]
    serve_cmd = [*contract.SERVE_COMMAND, "/work/bundle"]
    if bundle_url is not None:
        if sha256 is None:
            raise ValueError("a fetched bundle needs its pinned sha256")
        init = _container("fetch", image, ["fetch", bundle_url, "/work/bundle"], volumeMounts=work)
        main_cmd: dict[str, Any] = {"args": [*serve_cmd[1:], contract.FLAG_SHA256, sha256, *flags]}
    else:
        init = _container(
            "bundle",
            image,
            ["-c", f"modeldeploy example-bundle /work/bundle --version {version} > /work/sha256"],
            command=["sh"],
            volumeMounts=work,
        )
        script = (
            f'exec {" ".join(serve_cmd)} {contract.FLAG_SHA256} "$(cat /work/sha256)" '
            + " ".join(flags)
        )
        main_cmd = {"command": ["sh"], "args": ["-c", script]}
    server = _container(
        "server",
        image,
        [],
        volumeMounts=work,
        ports=[{"name": "http", "containerPort": port}],
        readinessProbe={
            "httpGet": {"path": contract.READY_PATH, "port": port},
            "periodSeconds": 1,
            "failureThreshold": 3,
        },
        livenessProbe={
            "httpGet": {"path": contract.LIVE_PATH, "port": port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
    )
    server.update(main_cmd)
    pod = {
        "initContainers": [init],
        "containers": [server],
        "volumes": [{"name": "work", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}
    return _deployment(name, labels, replicas, pod, annotations)


def http_get_pod(name: str, image: str, url: str) -> Manifest:
    """A one-shot pod that prints what `url` serves (in-cluster traffic only)."""
    pod_sec, sec = restricted_security()
    code = (
        "import sys, urllib.request\n"
        "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": pod_sec,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "get",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", code, url],
                    "securityContext": sec,
                }
            ],
        },
    }

"""Model bundles, served from a pod inside the cluster (nothing outside is reached).

The pod and its Service come from the harness: either the example bundles
(``workloads.bundle_server``: the server image builds each bundle with ``modeldeploy
example-bundle`` at start) or bundles a test built itself (``workloads.bundle_files_server``:
the archives and their digests in a ConfigMap); both are served with Python's http.server.
This module deploys them into a namespace and reads back each bundle's URI and sha256 as a
ModelDeployment needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from e2e.cluster import probe, workloads
from e2e.cluster.api import Cluster, wait_rollout
from e2e.traffic import check_address

EXAMPLE_MODEL = "incident-predictor"  # the example bundles' model name


@dataclass(frozen=True)
class Bundle:
    version: str
    uri: str
    sha256: str
    model: str = EXAMPLE_MODEL


def serve_bundles(
    cluster: Cluster,
    namespace: str,
    variants: dict[str, str],
    name: str = "bundles",
    timeout: int = 240,
) -> dict[str, Bundle]:
    """Deploy the file server with ``{version: variant}`` bundles; their URIs and digests."""
    manifests = workloads.bundle_server(cluster.server_image, variants, name=name)
    return _serve(cluster, namespace, manifests, list(variants), EXAMPLE_MODEL, name, timeout)


def serve_files(
    cluster: Cluster,
    namespace: str,
    bundles: dict[str, tuple[Path, str]],
    model: str,
    name: str = "bundles",
    timeout: int = 240,
) -> dict[str, Bundle]:
    """Deploy the file server with bundles built by the caller, ``{version: (archive, its
    sha256)}``, of the model ``model``; their URIs and the digests read back from the server."""
    files: dict[str, bytes] = {}
    for version, (archive, sha256) in bundles.items():
        files[f"{version}.tar.gz"] = archive.read_bytes()
        files[f"{version}.sha256"] = f"{sha256}\n".encode()
    manifests = workloads.bundle_files_server(cluster.server_image, files, name=name)
    return _serve(cluster, namespace, manifests, list(bundles), model, name, timeout)


def _serve(
    cluster: Cluster,
    namespace: str,
    manifests: list[workloads.Manifest],
    versions: list[str],
    model: str,
    name: str,
    timeout: int,
) -> dict[str, Bundle]:
    cluster.apply(manifests, namespace=namespace)
    wait_rollout(cluster, f"deployment/{name}", namespace, timeout=timeout)
    ip = check_address(
        cluster.kubectl_json("get", "service", name, "-n", namespace)["spec"]["clusterIP"]
    )

    def digest(version: str) -> str | None:
        try:
            code, body = probe.get(f"http://{ip}/{version}.sha256", timeout=5)
        except OSError:
            return None  # kube-proxy programs a new Service a moment later
        return body.strip() if code == 200 and len(body.strip()) == 64 else None

    return {
        v: Bundle(
            v,
            f"http://{ip}/{v}.tar.gz",
            probe.wait_for(f"sha256 of bundle {v}", lambda v=v: digest(v), 60, interval=0.5),
            model,
        )
        for v in versions
    }

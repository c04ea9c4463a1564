"""The example bundles, served from a pod inside the cluster (nothing outside is reached).

The pod and its Service come from the harness (``workloads.bundle_server``: the server image
builds each bundle with ``modeldeploy example-bundle`` at start and serves them with Python's
http.server); this module deploys them into a namespace and reads back each bundle's URI and
sha256 as a ModelDeployment needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from e2e.cluster import probe, workloads
from e2e.cluster.api import Cluster, wait_rollout
from e2e.traffic import check_address


@dataclass(frozen=True)
class Bundle:
    version: str
    uri: str
    sha256: str


def serve_bundles(
    cluster: Cluster,
    namespace: str,
    variants: dict[str, str],
    name: str = "bundles",
    timeout: int = 240,
) -> dict[str, Bundle]:
    """Deploy the file server with ``{version: variant}`` bundles; their URIs and digests."""
    cluster.apply(
        workloads.bundle_server(cluster.server_image, variants, name=name), namespace=namespace
    )
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
        )
        for v in variants
    }

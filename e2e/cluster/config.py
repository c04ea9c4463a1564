"""Versions, folders and addresses of the local cluster, in one place.

Everything else reads its paths and numbers from here, so the build, `up`, `down` and the
tests can never disagree about where a binary, a socket or an address is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.4"
HELM_VERSION = "v3.19.5"
# Debian's prometheus package is built without Kubernetes service discovery: ours is built
# from its Go module (module v0.316.0 is Prometheus 3.16.0) with only that discovery compiled in.
PROMETHEUS_MODULE_VERSION = "v0.316.0"
PROMETHEUS_VERSION = "3.16.0"
# Optional (the scale benchmark): fake nodes whose pods never run, built from its Go module.
KWOK_VERSION = "v0.7.0"
# The S3-compatible server of the s3:// bundle tests (Apache-2.0), built from its Go module.
VERSITYGW_VERSION = "v1.8.0"
# Optional (the gateway tests): Traefik, a real Gateway API implementation, from the wrapper
# module in e2e/gobuild/traefik.
TRAEFIK_VERSION = "v3.6.12"

REPO_ROOT = Path(__file__).resolve().parents[2]
GOBUILD_DIR = REPO_ROOT / "e2e" / "gobuild"
IMAGES_DIR = REPO_ROOT / "e2e" / "images"

NODE_NAME = "modeldeploy-node"
NETNS = "modeldeploy-node"
HOST_VETH = "md-host"
NODE_VETH = "md-node"
HOST_IP = "10.250.0.1"
NODE_IP = "10.250.0.2"
LINK_CIDR = "10.250.0.0/30"
CLUSTER_CIDR = "10.244.0.0/16"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
BRIDGE = "cni0"
# The optional fake node (kwok): only pods that request FAKE_NODE_RESOURCE fit on it (the real
# node has none), and its PreferNoSchedule taint keeps every other pod on the real node.
FAKE_NODE_NAME = "modeldeploy-fake-node"
FAKE_NODE_LABEL = "modeldeploy.io/fake-node"
FAKE_NODE_RESOURCE = "modeldeploy.io/fake-node"
# The scale benchmark's synthetic exporter (on the host side of the veth pair): Prometheus
# scrapes the fake node's pods there instead of at their (fake) pod addresses.
SCALE_EXPORTER_PORT = 9479

APISERVER_PORT = 6443
PROMETHEUS_PORT = 9090
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380

SERVER_IMAGE_REPO = "localhost/modeldeploy-server"
OPERATOR_IMAGE_REPO = "localhost/modeldeploy-operator"
PAUSE_IMAGE = "localhost/modeldeploy-pause:3.10"
TRAEFIK_IMAGE = f"localhost/modeldeploy-traefik:{TRAEFIK_VERSION}"
BASE_IMAGE = "localhost/debian-python:bookworm"
DEV_TAG = "dev"

# Kernel settings the kubelet may change on the machine (it does with
# protectKernelDefaults: false); `up` records them and `down` puts them back.
HOST_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)


def cache_root() -> Path:
    """Folder that survives checkouts: Go caches, binaries, images, containerd's store."""
    return Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy"))


def built_tool(name: str) -> str:
    """A tool from the pinned build (kubectl, helm, promtool, ...); a clear error when missing.

    Tests use the exact versions the cluster runs, never whatever else is on PATH.
    """
    paths = Paths.default()
    folders = (
        paths.k8s_bin,
        paths.helm_bin,
        paths.etcd_bin,
        paths.prometheus_bin,
        paths.versitygw_bin,
    )
    for folder in folders:
        candidate = folder / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise RuntimeError(
        f"{name} not found in {paths.cache / 'bin'}: run "
        "`.venv/bin/python -m e2e.cluster build` (make test does)"
    )


@dataclass(frozen=True)
class Paths:
    """Every file and folder the harness uses, derived from two roots."""

    cache: Path
    state: Path

    @classmethod
    def default(cls) -> Paths:
        cache = cache_root()
        state = Path(os.environ.get("MODELDEPLOY_CLUSTER_DIR", cache / "cluster"))
        return cls(cache=cache, state=state)

    # --- build outputs (cache) ---
    @property
    def gomodcache(self) -> Path:
        return self.cache / "go" / "mod"

    @property
    def gocache(self) -> Path:
        return self.cache / "go" / "cache"

    @property
    def k8s_bin(self) -> Path:
        return self.cache / "bin" / f"k8s-{K8S_VERSION}"

    @property
    def etcd_bin(self) -> Path:
        return self.cache / "bin" / f"etcd-{ETCD_VERSION}"

    @property
    def helm_bin(self) -> Path:
        return self.cache / "bin" / f"helm-{HELM_VERSION}"

    @property
    def kwok_bin(self) -> Path:
        return self.cache / "bin" / f"kwok-{KWOK_VERSION}"

    @property
    def versitygw_bin(self) -> Path:
        return self.cache / "bin" / f"versitygw-{VERSITYGW_VERSION}"

    @property
    def traefik_bin(self) -> Path:
        return self.cache / "bin" / f"traefik-{TRAEFIK_VERSION}"

    @property
    def prometheus_bin(self) -> Path:
        return self.cache / "bin" / f"prometheus-v{PROMETHEUS_VERSION}"

    @property
    def images(self) -> Path:
        return self.cache / "images"

    @property
    def containerd_root(self) -> Path:
        """containerd's content store: kept across `down` so images are imported once."""
        return self.cache / "containerd-root"

    @property
    def lock(self) -> Path:
        return self.cache / "cluster.lock"

    # --- one running cluster (state) ---
    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def containerd_state(self) -> Path:
        return self.state / "containerd"

    @property
    def containerd_sock(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    @property
    def kubelet_dir(self) -> Path:
        return self.state / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.state / "pod-logs"

    @property
    def cni_conf(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_ipam(self) -> Path:
        return self.state / "cni" / "ipam"

    @property
    def prometheus_dir(self) -> Path:
        return self.state / "prometheus"

    @property
    def rules_dir(self) -> Path:
        return self.state / "prometheus" / "rules"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def saved(self) -> Path:
        """What `up` changed on the machine and `down` must undo (JSON)."""
        return self.state / "saved.json"

    def kubectl(self) -> Path:
        return self.k8s_bin / "kubectl"

    def helm(self) -> Path:
        return self.helm_bin / "helm"

    def etcd(self) -> Path:
        return self.etcd_bin / "etcd"

    def prometheus(self) -> Path:
        return self.prometheus_bin / "prometheus"

    def promtool(self) -> Path:
        return self.prometheus_bin / "promtool"

    def kwok(self) -> Path:
        return self.kwok_bin / "kwok"

    def versitygw(self) -> Path:
        return self.versitygw_bin / "versitygw"

    def traefik(self) -> Path:
        return self.traefik_bin / "traefik"

    def k8s(self, name: str) -> Path:
        return self.k8s_bin / name


APISERVER_URL = f"https://{NODE_IP}:{APISERVER_PORT}"
PROMETHEUS_URL = f"http://{NODE_IP}:{PROMETHEUS_PORT}"

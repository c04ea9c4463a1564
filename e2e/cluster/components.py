"""Command lines of the cluster's daemons, in start order (pure: paths in, argv out)."""

from __future__ import annotations

from . import config
from .config import Paths

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


def etcd(p: Paths) -> list[str]:
    local = "http://127.0.0.1"
    return [
        str(p.etcd()),
        "--name",
        "node",
        "--data-dir",
        str(p.etcd_data),
        "--listen-client-urls",
        f"{local}:{config.ETCD_CLIENT_PORT}",
        "--advertise-client-urls",
        f"{local}:{config.ETCD_CLIENT_PORT}",
        "--listen-peer-urls",
        f"{local}:{config.ETCD_PEER_PORT}",
        "--initial-advertise-peer-urls",
        f"{local}:{config.ETCD_PEER_PORT}",
        "--initial-cluster",
        f"node={local}:{config.ETCD_PEER_PORT}",
        "--unsafe-no-fsync",
        "--log-level",
        "warn",
    ]


def kube_apiserver(p: Paths) -> list[str]:
    pki = p.pki
    return [
        str(p.k8s("kube-apiserver")),
        "--etcd-servers",
        f"http://127.0.0.1:{config.ETCD_CLIENT_PORT}",
        "--bind-address",
        "0.0.0.0",
        "--advertise-address",
        config.NODE_IP,
        "--secure-port",
        str(config.APISERVER_PORT),
        "--cert-dir",
        str(pki / "generated"),
        "--tls-cert-file",
        str(pki / "apiserver.crt"),
        "--tls-private-key-file",
        str(pki / "apiserver.key"),
        "--client-ca-file",
        str(pki / "ca.crt"),
        "--kubelet-client-certificate",
        str(pki / "apiserver-kubelet-client.crt"),
        "--kubelet-client-key",
        str(pki / "apiserver-kubelet-client.key"),
        "--kubelet-certificate-authority",
        str(pki / "ca.crt"),
        "--kubelet-preferred-address-types",
        "InternalIP",
        "--service-account-issuer",
        SA_ISSUER,
        "--service-account-key-file",
        str(pki / "sa.pub"),
        "--service-account-signing-key-file",
        str(pki / "sa.key"),
        "--service-cluster-ip-range",
        config.SERVICE_CIDR,
        "--authorization-mode",
        "Node,RBAC",
        "--enable-admission-plugins",
        "NodeRestriction",
        "--allow-privileged=true",
        "--profiling=false",
        "--event-ttl",
        "1h",
    ]


def _kubeconfig_flags(p: Paths, user: str) -> list[str]:
    kc = str(p.state / f"{user}.kubeconfig")
    return ["--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc]


def kube_controller_manager(p: Paths) -> list[str]:
    return [
        str(p.k8s("kube-controller-manager")),
        *_kubeconfig_flags(p, "controller-manager"),
        "--bind-address",
        "127.0.0.1",
        "--leader-elect=false",
        "--profiling=false",
        "--root-ca-file",
        str(p.pki / "ca.crt"),
        "--service-account-private-key-file",
        str(p.pki / "sa.key"),
        "--use-service-account-credentials=true",
        "--cluster-signing-cert-file",
        str(p.pki / "ca.crt"),
        "--cluster-signing-key-file",
        str(p.pki / "ca.key"),
        "--allocate-node-cidrs=true",
        "--cluster-cidr",
        config.CLUSTER_CIDR,
        "--node-cidr-mask-size",
        "24",
        "--service-cluster-ip-range",
        config.SERVICE_CIDR,
    ]


def kube_scheduler(p: Paths) -> list[str]:
    return [
        str(p.k8s("kube-scheduler")),
        *_kubeconfig_flags(p, "scheduler"),
        "--bind-address",
        "127.0.0.1",
        "--leader-elect=false",
        "--profiling=false",
    ]


def containerd(p: Paths) -> list[str]:
    return ["containerd", "--config", str(p.containerd_state / "config.toml")]


def kubelet(p: Paths) -> list[str]:
    return [
        str(p.k8s("kubelet")),
        "--config",
        str(p.state / "kubelet-config.json"),
        "--kubeconfig",
        str(p.state / "kubelet.kubeconfig"),
        "--root-dir",
        str(p.kubelet_dir),
        "--cert-dir",
        str(p.kubelet_dir / "pki"),
        "--hostname-override",
        config.NODE_NAME,
        "--node-ip",
        config.NODE_IP,
    ]


def kube_proxy(p: Paths) -> list[str]:
    return [str(p.k8s("kube-proxy")), "--config", str(p.state / "kube-proxy-config.json")]


def prometheus(p: Paths) -> list[str]:
    return [
        str(p.prometheus()),
        "--config.file",
        str(p.prometheus_dir / "prometheus.yml"),
        "--storage.tsdb.path",
        str(p.prometheus_dir / "data"),
        "--storage.tsdb.retention.time",
        "12h",
        "--web.listen-address",
        f"0.0.0.0:{config.PROMETHEUS_PORT}",
        "--web.enable-lifecycle",
        "--log.level",
        "warn",
    ]


# Stop order for `down` is the reverse of this start order.
START_ORDER = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
    "prometheus",
)

"""Configuration files of the cluster's components, as pure functions of the paths.

No I/O here: `up` writes what these return, and the tests check them without a cluster.
YAML files are written as JSON (a subset of YAML), so only the standard library is needed.
"""

from __future__ import annotations

import json
from typing import Any

from . import config
from .config import Paths

# Prometheus scrape convention (documented in the README):
#   pods annotated prometheus.io/scrape: "true" (port from prometheus.io/port, path from
#   prometheus.io/path, default /metrics) form job "pods";
#   pods annotated modeldeploy.io/operator-metrics: "true" form job "modeldeploy-operator".
SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
OPERATOR_ANNOTATION = "modeldeploy.io/operator-metrics"
# Pod label -> target label, added only when the pod carries the label.
POD_LABELS_TO_TARGET = {
    "modeldeploy.io/name": "modeldeployment",
    "modeldeploy.io/slot": "slot",
    "modeldeploy.io/role": "role",
}
SCRAPE_INTERVAL = "2s"


def _sd_name(name: str) -> str:
    """Prometheus' service-discovery spelling of a label or annotation name."""
    return "".join(c if c.isalnum() else "_" for c in name)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2) + "\n"


def kubeconfig(paths: Paths, user: str, server: str = config.APISERVER_URL) -> str:
    """A kubeconfig for one client certificate made by pki.py."""
    return dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "modeldeploy",
                    "cluster": {
                        "server": server,
                        "certificate-authority": str(paths.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate": str(paths.pki / f"{user}.crt"),
                        "client-key": str(paths.pki / f"{user}.key"),
                    },
                }
            ],
            "contexts": [
                {"name": "modeldeploy", "context": {"cluster": "modeldeploy", "user": user}}
            ],
            "current-context": "modeldeploy",
        }
    )


def containerd_toml(paths: Paths) -> str:
    """containerd 1.6 with its own root, state and socket; CRI set up for this machine.

    restrict_oom_score_adj: our process tree lacks CAP_SYS_RESOURCE, without it every
    sandbox fails. Hugetlb and AppArmor are not available here. The sandbox image is our
    local pause image: nothing is ever pulled.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{paths.containerd_root}"
state = "{paths.containerd_state / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{paths.containerd_sock}"

[ttrpc]
  address = "{paths.containerd_sock}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{paths.containerd_state / "opt"}"

[{cri}]
  sandbox_image = "{config.PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  restrict_oom_score_adj = true
  disable_apparmor = true
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
  enable_selinux = false
  max_concurrent_downloads = 1

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "/usr/sbin/runc"

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{paths.cni_conf}"
  max_conf_num = 1
"""


def cni_conflist(paths: Paths) -> str:
    """The bridge network of the pods. No default route: a pod can reach the cluster's own
    ranges (pods, Services, the host end of the veth) and nothing else."""
    routes = [{"dst": c} for c in (config.CLUSTER_CIDR, config.SERVICE_CIDR, config.LINK_CIDR)]
    return dump(
        {
            "cniVersion": "1.0.0",
            "name": "modeldeploy",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": config.BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": config.POD_CIDR}]],
                        "routes": routes,
                        "dataDir": str(paths.cni_ipam),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
    )


def resolv_conf() -> str:
    """Pods get this resolver file: it names only the pod's own loopback, no outside server."""
    return "nameserver 127.0.0.1\noptions ndots:1\n"


def kubelet_config(paths: Paths) -> str:
    return dump(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": config.NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(paths.pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(paths.pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(paths.pki / "kubelet-serving.key"),
            "containerRuntimeEndpoint": f"unix://{paths.containerd_sock}",
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "cgroupsPerQOS": True,
            "cgroupRoot": "/",
            "enforceNodeAllocatable": ["pods"],
            "clusterDomain": "cluster.local",
            "resolvConf": str(paths.state / "resolv.conf"),
            "podLogsDir": str(paths.pod_logs),
            "volumePluginDir": str(paths.kubelet_dir / "volume-plugins"),
            "failSwapOn": False,
            "protectKernelDefaults": False,
            "serializeImagePulls": False,
            # Nothing pins the pause image in containerd 1.6: no image GC at all.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "mergeDefaultEvictionSettings": False,
            "shutdownGracePeriod": "0s",
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "registerNode": True,
            "maxPods": 110,
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
        }
    )


def kube_proxy_config(paths: Paths) -> str:
    """iptables mode (no IPVS in this kernel); conntrack sysctls left alone (zeros)."""
    return dump(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(paths.state / "kube-proxy.kubeconfig")},
            "hostnameOverride": config.NODE_NAME,
            "bindAddress": "0.0.0.0",
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "clusterCIDR": config.CLUSTER_CIDR,
            "detectLocalMode": "ClusterCIDR",
            "iptables": {
                "localhostNodePorts": False,
                "syncPeriod": "30s",
                "minSyncPeriod": "0s",
                "masqueradeAll": False,
            },
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "nodePortAddresses": [f"{config.NODE_IP}/32"],
        }
    )


def _pod_relabels() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
        {
            "source_labels": [
                "__address__",
                f"__meta_kubernetes_pod_annotation_{_sd_name(PORT_ANNOTATION)}",
            ],
            "regex": r"([^:]+)(?::\d+)?;(\d+)",
            "replacement": "$1:$2",
            "target_label": "__address__",
        },
        {
            "source_labels": [f"__meta_kubernetes_pod_annotation_{_sd_name(PATH_ANNOTATION)}"],
            "regex": "(.+)",
            "target_label": "__metrics_path__",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    for pod_label, target in POD_LABELS_TO_TARGET.items():
        rules.append(
            {
                "source_labels": [f"__meta_kubernetes_pod_label_{_sd_name(pod_label)}"],
                "regex": "(.+)",
                "target_label": target,
            }
        )
    return rules


FAKE_NODE_SCRAPE_INTERVAL = "5s"


def _fake_node_job(
    sd: list[dict[str, Any]], scrape_ann: str, node: str, fake: str
) -> dict[str, Any]:
    """Pods of the optional fake node (kwok) run nothing: they are scraped at the scale
    exporter, one target per pod as for real pods (same target labels, so the same `up`
    series), the path naming the pod's namespace, ModelDeployment, slot, role and version."""
    version = f"__meta_kubernetes_pod_label_{_sd_name('app.kubernetes.io/version')}"
    return {
        "job_name": "fake-node-pods",
        "scrape_interval": FAKE_NODE_SCRAPE_INTERVAL,
        "scrape_timeout": FAKE_NODE_SCRAPE_INTERVAL,
        "kubernetes_sd_configs": sd,
        "relabel_configs": [
            {"source_labels": [scrape_ann], "regex": "true", "action": "keep"},
            {"source_labels": [node], "regex": fake, "action": "keep"},
            *_pod_relabels(),
            {
                "source_labels": ["namespace", "modeldeployment", "slot", "role", version],
                "separator": "/",
                "regex": "(.*)",
                "replacement": "/metrics/$1",
                "target_label": "__metrics_path__",
            },
            {
                "regex": "(.*)",
                "replacement": f"{config.HOST_IP}:{config.SCALE_EXPORTER_PORT}",
                "target_label": "__address__",
            },
        ],
    }


def prometheus_config(paths: Paths) -> str:
    """Pods discovered through the apiserver (role pod), 2 s scrape and rule evaluation."""
    sd = [
        {
            "role": "pod",
            "api_server": config.APISERVER_URL,
            "tls_config": {
                "ca_file": str(paths.pki / "ca.crt"),
                "cert_file": str(paths.pki / "prometheus.crt"),
                "key_file": str(paths.pki / "prometheus.key"),
            },
        }
    ]
    scrape_ann = f"__meta_kubernetes_pod_annotation_{_sd_name(SCRAPE_ANNOTATION)}"
    operator_ann = f"__meta_kubernetes_pod_annotation_{_sd_name(OPERATOR_ANNOTATION)}"
    node, fake = "__meta_kubernetes_pod_node_name", config.FAKE_NODE_NAME
    return dump(
        {
            "global": {
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "evaluation_interval": SCRAPE_INTERVAL,
            },
            "rule_files": [str(paths.rules_dir / "*.yml"), str(paths.rules_dir / "*.yaml")],
            "scrape_configs": [
                {
                    "job_name": "pods",
                    "kubernetes_sd_configs": sd,
                    "relabel_configs": [
                        {"source_labels": [scrape_ann], "regex": "true", "action": "keep"},
                        {"source_labels": [operator_ann], "regex": "true", "action": "drop"},
                        {"source_labels": [node], "regex": fake, "action": "drop"},
                        *_pod_relabels(),
                    ],
                },
                _fake_node_job(sd, scrape_ann, node, fake),
                {
                    "job_name": "modeldeploy-operator",
                    "kubernetes_sd_configs": sd,
                    "relabel_configs": [
                        {"source_labels": [operator_ann], "regex": "true", "action": "keep"},
                        *_pod_relabels(),
                    ],
                },
            ],
        }
    )


def prometheus_rbac() -> str:
    """Prometheus' own identity may list and watch pods, nothing more."""
    return dump(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "modeldeploy:prometheus"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["pods"],
                            "verbs": ["get", "list", "watch"],
                        }
                    ],
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "modeldeploy:prometheus"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "modeldeploy:prometheus",
                    },
                    "subjects": [
                        {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "User",
                            "name": "modeldeploy:prometheus",
                        }
                    ],
                },
            ],
        }
    )


def env_exports(paths: Paths, server_image: str, operator_image: str) -> str:
    """Shell lines for `eval "$(python -m e2e.cluster env)"`."""
    path = ":".join(str(p) for p in (paths.k8s_bin, paths.helm_bin, paths.etcd_bin))
    lines = {
        "KUBECONFIG": str(paths.kubeconfig),
        "PROMETHEUS_URL": config.PROMETHEUS_URL,
        "MODELDEPLOY_APISERVER_URL": config.APISERVER_URL,
        "MODELDEPLOY_NODE_IP": config.NODE_IP,
        "MODELDEPLOY_SERVER_IMAGE": server_image,
        "MODELDEPLOY_OPERATOR_IMAGE": operator_image,
        "CONTAINERD_ADDRESS": str(paths.containerd_sock),
        "CONTAINERD_NAMESPACE": "k8s.io",
    }
    out = [f"export {k}={_quote(v)}" for k, v in lines.items()]
    out.append(f'export PATH={_quote(path)}:"$PATH"')
    return "\n".join(out)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"

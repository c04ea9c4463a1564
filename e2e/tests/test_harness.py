"""The harness' pure parts: image content hashing, rendered configs, env output (no cluster)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import pytest

from e2e.cluster import components, config, render
from e2e.cluster.config import Paths
from e2e.cluster.images import content_hash


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(cache=tmp_path / "cache", state=tmp_path / "state")


def _tree(root: Path) -> None:
    (root / "server").mkdir(parents=True)
    (root / "server" / "app.py").write_text("x = 1\n")
    (root / "Dockerfile").write_text("FROM scratch\n")


def test_content_hash_follows_the_code_and_ignores_bytecode(tmp_path: Path) -> None:
    _tree(tmp_path)
    inputs = ("Dockerfile", "server")
    first = content_hash(tmp_path, inputs)
    (tmp_path / "server" / "__pycache__").mkdir()
    (tmp_path / "server" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0junk")
    assert content_hash(tmp_path, inputs) == first
    (tmp_path / "server" / "app.py").write_text("x = 2\n")
    assert content_hash(tmp_path, inputs) != first


def test_content_hash_depends_on_the_base_image(tmp_path: Path) -> None:
    _tree(tmp_path)
    inputs = ("Dockerfile", "server")
    assert content_hash(tmp_path, inputs, extra="sha256:a") != content_hash(
        tmp_path, inputs, extra="sha256:b"
    )


def test_pods_get_no_default_route_and_only_cluster_ranges(paths: Paths) -> None:
    conf = json.loads(render.cni_conflist(paths))
    bridge = conf["plugins"][0]
    routes = [r["dst"] for r in bridge["ipam"]["routes"]]
    assert "0.0.0.0/0" not in routes
    assert set(routes) == {config.CLUSTER_CIDR, config.SERVICE_CIDR, config.LINK_CIDR}
    assert bridge["ipMasq"] is False
    pod_net = ipaddress.ip_network(config.POD_CIDR)
    assert pod_net.subnet_of(ipaddress.ip_network(config.CLUSTER_CIDR))


def test_addresses_are_private_and_do_not_overlap() -> None:
    nets = [
        ipaddress.ip_network(c)
        for c in (config.CLUSTER_CIDR, config.SERVICE_CIDR, config.LINK_CIDR)
    ]
    for i, a in enumerate(nets):
        assert a.is_private
        for b in nets[i + 1 :]:
            assert not a.overlaps(b)
    assert ipaddress.ip_address(config.NODE_IP) in nets[2]
    assert ipaddress.ip_address(config.KUBERNETES_SERVICE_IP) in nets[1]


def test_resolver_file_names_only_loopback() -> None:
    servers = [
        line.split()[1]
        for line in render.resolv_conf().splitlines()
        if line.startswith("nameserver")
    ]
    assert servers and all(ipaddress.ip_address(s).is_loopback for s in servers)


def test_prometheus_relabels_pod_labels_to_target_labels(paths: Paths) -> None:
    conf = json.loads(render.prometheus_config(paths))
    assert conf["global"]["scrape_interval"] == "2s"
    assert conf["global"]["evaluation_interval"] == "2s"
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    assert set(jobs) == {"pods", "modeldeploy-operator", "fake-node-pods"}
    for job in jobs.values():
        assert job["kubernetes_sd_configs"][0]["role"] == "pod"
        targets = {r.get("target_label"): r for r in job["relabel_configs"]}
        assert targets["namespace"]["source_labels"] == ["__meta_kubernetes_namespace"]
        assert targets["pod"]["source_labels"] == ["__meta_kubernetes_pod_name"]
        assert targets["modeldeployment"]["source_labels"] == [
            "__meta_kubernetes_pod_label_modeldeploy_io_name"
        ]
        # Only when the pod carries the label: an empty value must not match.
        assert targets["role"]["regex"] == "(.+)"
    keep = jobs["pods"]["relabel_configs"][0]
    assert keep == {
        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
        "regex": "true",
        "action": "keep",
    }
    # Pods on the fake node (scale runs) are scraped by their own job only, never at their
    # fake addresses by the real one.
    on_fake = {
        "source_labels": ["__meta_kubernetes_pod_node_name"],
        "regex": config.FAKE_NODE_NAME,
    }
    assert {**on_fake, "action": "drop"} in jobs["pods"]["relabel_configs"]
    assert {**on_fake, "action": "keep"} in jobs["fake-node-pods"]["relabel_configs"]


def test_kubelet_config_keeps_cgroup_v1_and_no_image_gc(paths: Paths) -> None:
    conf = json.loads(render.kubelet_config(paths))
    assert conf["failCgroupV1"] is False
    assert conf["cgroupDriver"] == "cgroupfs"
    assert conf["imageGCHighThresholdPercent"] == 100
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["resolvConf"].startswith(str(paths.state))


def test_every_daemon_keeps_its_data_under_our_folders(paths: Paths) -> None:
    roots = (str(paths.state), str(paths.cache))
    for name in components.START_ORDER:
        argv = getattr(components, name.replace("-", "_"))(paths)
        for arg in argv:
            if arg.startswith("/") and not arg.startswith("/usr/"):
                assert arg.startswith(roots), (name, arg)
    toml = render.containerd_toml(paths)
    assert f'root = "{paths.containerd_root}"' in toml
    assert "SystemdCgroup = false" in toml
    assert f'sandbox_image = "{config.PAUSE_IMAGE}"' in toml


def test_env_output_is_valid_shell(paths: Paths) -> None:
    text = render.env_exports(paths, "localhost/s:1", "localhost/o:1")
    shell = subprocess.run(
        [
            "bash",
            "-c",
            f'{text}\necho "$KUBECONFIG|$MODELDEPLOY_SERVER_IMAGE|$PROMETHEUS_URL"; '
            "command -v kubectl >/dev/null; echo ${PATH%%:*}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    first, second = shell.stdout.splitlines()
    assert first == f"{paths.kubeconfig}|localhost/s:1|{config.PROMETHEUS_URL}"
    assert second == str(paths.k8s_bin)


def test_traefik_is_an_optional_target_with_a_version_check(paths: Paths) -> None:
    from e2e.cluster import gobuild

    assert "traefik" not in gobuild.targets(paths)  # `build` alone never spends minutes on it
    target = gobuild.optional_targets(paths)["traefik"]
    assert target.binaries == (paths.cache / "bin" / "traefik-v3.6.12" / "traefik",)
    assert target.version_text == config.TRAEFIK_VERSION


def test_traefik_pod_is_restricted_and_stays_inside_the_cluster() -> None:
    from e2e import traefik

    objs = {m["kind"]: m for m in traefik.manifests(config.TRAEFIK_IMAGE, rules=[])}
    ns = objs["Namespace"]["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    assert objs["ServiceAccount"]["automountServiceAccountToken"] is False
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "--global.checkNewVersion=false" in container["args"]
    assert "--global.sendAnonymousUsage=false" in container["args"]
    listener = objs["Gateway"]["spec"]["listeners"][0]
    assert listener["port"] == traefik.PORT and f":{traefik.PORT}" in container["args"][0]


def test_traefik_rbac_writes_only_gateway_status() -> None:
    from e2e import traefik

    rules = traefik.rbac_rules()  # read from Traefik's module (the wrapper's module cache)
    writes = {
        r
        for rule in rules
        if set(rule["verbs"]) - {"get", "list", "watch"}
        for r in rule["resources"]
    }
    assert writes and all(r.endswith("/status") and "ingress" not in r for r in writes), writes
    assert not any("pods" in rule["resources"] for rule in rules)

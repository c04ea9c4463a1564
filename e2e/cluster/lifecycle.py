"""`up`, `down`, `status` and `env` of the local cluster.

`up` is idempotent (a healthy cluster is reused; leftovers of a crashed one are cleaned
first). `down` undoes everything `up` and the kubelet did, is safe to run twice, and works
after a crash: it finds our processes by pid file and by our socket path, our mounts by our
folders, and our pod namespaces by containerd's records or by what appeared since `up`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

from . import components, config, node, probe, procs, render
from .config import Paths
from .images import Image, ImageSet, current_image_set
from .pki import make_pki
from .sh import CommandError, run, say, write

# ---------------------------------------------------------------- status


@dataclass
class Report:
    processes: dict[str, bool] = field(default_factory=dict)
    apiserver: bool = False
    node_ready: bool = False
    prometheus: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return (
            bool(self.processes)
            and all(self.processes.values())
            and self.apiserver
            and self.node_ready
            and self.prometheus
        )

    def lines(self) -> list[str]:
        out = [f"{name:24} {'running' if ok else 'DOWN'}" for name, ok in self.processes.items()]
        out += [
            f"{'apiserver /readyz':24} {'ok' if self.apiserver else 'NO'}",
            f"{'node ' + config.NODE_NAME:24} {'Ready' if self.node_ready else 'NOT READY'}",
            f"{'prometheus /-/ready':24} {'ok' if self.prometheus else 'NO'}",
            *self.problems,
            "healthy" if self.healthy else "not healthy",
        ]
        return out


def status(paths: Paths) -> Report:
    report = Report()
    running = procs.tracked(paths)
    for name in components.START_ORDER:
        t = running.get(name)
        report.processes[name] = t is not None and procs.alive(t)
    if not any(report.processes.values()):
        report.processes = {}
        report.problems.append("cluster is not up")
        return report
    if (paths.pki / "admin.crt").exists():
        ctx = probe.admin_context(paths)
        code, body = probe.get(f"{config.APISERVER_URL}/readyz", ctx, timeout=3)
        report.apiserver = code == 200
        if report.apiserver:
            report.node_ready = _node_ready(paths)
    code, _ = probe.get(f"{config.PROMETHEUS_URL}/-/ready", timeout=3)
    report.prometheus = code == 200
    return report


def _node_ready(paths: Paths) -> bool:
    ctx = probe.admin_context(paths)
    try:
        obj = probe.get_json(f"{config.APISERVER_URL}/api/v1/nodes/{config.NODE_NAME}", ctx)
    except (RuntimeError, ValueError):
        return False
    conds = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


# ---------------------------------------------------------------- up


def preflight(paths: Paths) -> ImageSet:
    if os.geteuid() != 0:
        raise RuntimeError("the local cluster needs root (network namespaces, containerd)")
    from .gobuild import targets

    missing = [str(b) for t in targets(paths).values() for b in t.binaries if not b.exists()]
    if missing:
        raise RuntimeError(f"missing binaries {missing}: run `python -m e2e.cluster build`")
    for tool in (
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "ctr",
        "nsenter",
        "iptables",
        "openssl",
    ):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/setup.sh")
    return current_image_set(paths)


def up(paths: Paths) -> None:
    start = time.monotonic()
    images = preflight(paths)
    if status(paths).healthy:
        say("cluster is up and healthy: reusing it")
        ensure_images(paths, images)
        return
    if procs.tracked(paths) or node.exists() or paths.saved.exists():
        say("leftovers of an earlier cluster: cleaning up first")
        down(paths)
    paths.state.mkdir(parents=True, exist_ok=True)
    node.save_host_sysctls(paths)
    try:
        _write_files(paths)
        node.create()
        _start_control_plane(paths)
        _start_node(paths, images)
        procs.start(paths, "prometheus", components.prometheus(paths))
        _wait_ready(paths)
    except BaseException:
        say(f"`up` failed; logs in {paths.logs}; cleaning up")
        try:
            down(paths, keep_logs=True)
        finally:
            raise
    say(
        f"cluster up in {time.monotonic() - start:.0f}s; "
        f'`eval "$(.venv/bin/python -m e2e.cluster env)"` to use it'
    )


def _write_files(paths: Paths) -> None:
    make_pki(paths.pki)
    write(paths.kubeconfig, render.kubeconfig(paths, "admin"), 0o600)
    for user in ("controller-manager", "scheduler", "kubelet", "kube-proxy"):
        write(paths.state / f"{user}.kubeconfig", render.kubeconfig(paths, user), 0o600)
    write(paths.containerd_state / "config.toml", render.containerd_toml(paths))
    write(paths.cni_conf / "10-modeldeploy.conflist", render.cni_conflist(paths))
    write(paths.state / "resolv.conf", render.resolv_conf())
    write(paths.state / "kubelet-config.json", render.kubelet_config(paths))
    write(paths.state / "kube-proxy-config.json", render.kube_proxy_config(paths))
    write(paths.prometheus_dir / "prometheus.yml", render.prometheus_config(paths))
    paths.rules_dir.mkdir(parents=True, exist_ok=True)
    for d in (paths.kubelet_dir, paths.pod_logs, paths.cni_ipam, paths.containerd_root):
        d.mkdir(parents=True, exist_ok=True)


def _log_tail(paths: Paths, name: str, lines: int = 15) -> str:
    log = paths.logs / f"{name}.log"
    if not log.exists():
        return ""
    return f"--- {log} (tail) ---\n" + "\n".join(
        log.read_text(errors="replace").splitlines()[-lines:]
    )


def _start_control_plane(paths: Paths) -> None:
    procs.start(paths, "etcd", components.etcd(paths))
    procs.start(paths, "kube-apiserver", components.kube_apiserver(paths))
    ctx = probe.admin_context(paths)
    probe.wait_for(
        "kube-apiserver /readyz",
        lambda: probe.get(f"{config.APISERVER_URL}/readyz", ctx)[0] == 200,
        120,
        detail=lambda: _log_tail(paths, "kube-apiserver") + _log_tail(paths, "etcd"),
    )
    say("kube-apiserver ready")
    procs.start(paths, "kube-controller-manager", components.kube_controller_manager(paths))
    procs.start(paths, "kube-scheduler", components.kube_scheduler(paths))
    kubectl(paths, "apply", "-f", "-", input=render.prometheus_rbac())


def _start_node(paths: Paths, images: ImageSet) -> None:
    procs.start(paths, "containerd", components.containerd(paths))
    probe.wait_for(
        "containerd socket",
        lambda: _ctr(paths, "version", check=False).returncode == 0,
        30,
        detail=lambda: _log_tail(paths, "containerd"),
    )
    ensure_images(paths, images, prune=True)
    procs.start(paths, "kubelet", components.kubelet(paths))
    procs.start(paths, "kube-proxy", components.kube_proxy(paths))


def _wait_ready(paths: Paths) -> None:
    probe.wait_for(
        f"node {config.NODE_NAME} Ready",
        lambda: _node_ready(paths),
        120,
        detail=lambda: _log_tail(paths, "kubelet", 25),
    )
    say(f"node {config.NODE_NAME} Ready")
    probe.wait_for(
        "the default ServiceAccount",
        lambda: kubectl(paths, "get", "serviceaccount", "default", check=False).returncode == 0,
        60,
    )
    probe.wait_for(
        "prometheus",
        lambda: probe.get(f"{config.PROMETHEUS_URL}/-/ready")[0] == 200,
        60,
        detail=lambda: _log_tail(paths, "prometheus"),
    )


def kubectl(
    paths: Paths, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
) -> CompletedProcess[str]:
    return run(
        [str(paths.kubectl()), "--kubeconfig", str(paths.kubeconfig), *args],
        check=check,
        input=input.encode() if input is not None else None,
        timeout=timeout,
    )


def _ctr(paths: Paths, *args: str, check: bool = True) -> CompletedProcess[str]:
    return run(
        ["ctr", "--address", str(paths.containerd_sock), "--namespace", "k8s.io", *args],
        check=check,
        timeout=300,
    )


def ensure_images(paths: Paths, images: ImageSet | tuple[Image, ...], prune: bool = False) -> None:
    """Import our images into the node's containerd unless it holds these very archives
    (the whole set, or single images such as the gateway's).

    `prune` (only when no pod can be using them: at `up`) removes older builds' tags."""
    wanted = images.all() if isinstance(images, ImageSet) else images
    marker = paths.containerd_root / "modeldeploy-images.json"
    known = json.loads(marker.read_text()) if marker.exists() else {}
    present = set(_ctr(paths, "images", "ls", "-q").stdout.split())
    for image in wanted:
        st = image.archive.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        if image.ref in present and known.get(image.ref) == stamp:
            continue
        t = time.monotonic()
        _ctr(paths, "images", "import", str(image.archive))
        repo = image.ref.rsplit(":", 1)[0]
        if repo != config.PAUSE_IMAGE.rsplit(":", 1)[0]:
            _ctr(paths, "images", "tag", "--force", image.ref, f"{repo}:{config.DEV_TAG}")
        known[image.ref] = stamp
        marker.write_text(json.dumps(known))
        say(f"imported {image.ref} into the node's containerd in {time.monotonic() - t:.1f}s")
    current = {i.ref for i in wanted}
    for ref in (present - current) if prune else set():
        repo, _, tag = ref.rpartition(":")
        if repo in (config.SERVER_IMAGE_REPO, config.OPERATOR_IMAGE_REPO) and tag != config.DEV_TAG:
            _ctr(paths, "images", "rm", ref, check=False)
            known.pop(ref, None)
    marker.write_text(json.dumps(known))


# ---------------------------------------------------------------- down


def down(paths: Paths, keep_logs: bool = True) -> None:
    start = time.monotonic()
    for name in ("prometheus", "kube-proxy", "kubelet"):
        procs.stop(paths, name)
    pod_netns = _remove_containers(paths)
    procs.stop(paths, "containerd")
    for pid in procs.pids_with_arg(str(paths.containerd_sock)):
        procs.kill_pid(pid, grace=2.0)
    killed = node.kill_kubepods_processes()
    if killed:
        say(f"killed {killed} leftover container processes")
    for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        procs.stop(paths, name)
    for name, t in procs.tracked(paths).items():  # anything else we started
        procs.kill_pid(t.pid, t.start)
        (paths.pids / f"{name}.json").unlink(missing_ok=True)
    unmounted = node.unmount_under(paths.state, paths.containerd_root)
    node.delete_pod_netns(pod_netns | node.leftover_pod_netns(paths))
    node.destroy()
    node.remove_kubepods_cgroups()
    _remove_log_links(paths)
    node.restore_host_sysctls(paths)
    _wipe_state(paths, keep_logs)
    left = leftovers(paths)
    if left:
        raise RuntimeError("`down` left things behind:\n  " + "\n  ".join(left))
    say(f"cluster down in {time.monotonic() - start:.0f}s ({unmounted} mounts removed)")


def leftovers(paths: Paths) -> list[str]:
    """Whatever of ours still exists on the machine; empty after a clean `down`."""
    found = [
        f"process {t.name} pid {t.pid}" for t in procs.tracked(paths).values() if procs.alive(t)
    ]
    found += [
        f"process {pid} using our containerd socket"
        for pid in procs.pids_with_arg(str(paths.containerd_sock))
    ]
    if node.exists():
        found.append(f"network namespace {config.NETNS}")
    if Path(f"/sys/class/net/{config.HOST_VETH}").exists():
        found.append(f"host interface {config.HOST_VETH}")
    found += [f"network namespace {n}" for n in node.leftover_pod_netns(paths)]
    found += [f"mount {m}" for m in node.mounts_under(paths.state, paths.containerd_root)]
    found += [f"cgroup {c}" for c in node.kubepods_cgroups()]
    if paths.saved.exists():
        found.append(f"unrestored kernel settings in {paths.saved}")
    return found


def _remove_containers(paths: Paths) -> set[str]:
    """Kill and delete every container of ours while containerd still runs; return the
    network namespaces of their pod sandboxes (CRI made them, nobody else will remove them)."""
    netns: set[str] = set()
    if not paths.containerd_sock.exists():
        return netns
    try:
        tasks = _ctr(paths, "tasks", "ls", "-q", check=True).stdout.split()
        for task in tasks:
            _ctr(paths, "tasks", "delete", "--force", task, check=False)
        for cid in _ctr(paths, "containers", "ls", "-q").stdout.split():
            info = _ctr(paths, "containers", "info", cid, check=False)
            if info.returncode == 0:
                spec = json.loads(info.stdout).get("Spec") or {}
                for ns in spec.get("linux", {}).get("namespaces", []):
                    if ns.get("type") == "network" and ns.get("path"):
                        netns.add(Path(ns["path"]).name)
            _ctr(paths, "containers", "delete", cid, check=False)
    except (CommandError, ValueError) as err:
        say(f"containerd cleanup incomplete ({err}); falling back to namespaces made since up")
    return netns


def _remove_log_links(paths: Paths) -> None:
    """The kubelet links /var/log/containers/* to its pod logs; ours point into our folder."""
    d = Path("/var/log/containers")
    if not d.is_dir():
        return
    for link in d.iterdir():
        if link.is_symlink() and os.readlink(link).startswith(str(paths.pod_logs)):
            link.unlink()


def _wipe_state(paths: Paths, keep_logs: bool) -> None:
    if not paths.state.exists():
        return
    for child in paths.state.iterdir():
        if keep_logs and child == paths.logs:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    # containerd's CRI keeps per-sandbox files in its root; the containers are gone.
    for sub in ("sandboxes", "containers"):
        shutil.rmtree(paths.containerd_root / "io.containerd.grpc.v1.cri" / sub, ignore_errors=True)


# ---------------------------------------------------------------- env


def env_exports(paths: Paths) -> str:
    images = current_image_set(paths)
    return render.env_exports(paths, images.server.ref, images.operator.ref)

"""The node: one network namespace of ours, joined to the host by a veth pair.

Everything of the cluster runs in it, like kind's node container. It has no default route
and its FORWARD chain drops whatever is not bound for the cluster's own ranges, so no pod
and no component can send a packet anywhere but here. The host only gets routes to the pod
and Service ranges through the veth; its own ip_forward is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from . import config
from .config import Paths
from .procs import NETNS_PATH, in_node
from .sh import run, say

GUARD_CHAIN = "MODELDEPLOY-GUARD"


def exists() -> bool:
    return NETNS_PATH.exists()


def create() -> None:
    """Make the namespace, the veth pair, addresses, host routes and the forward guard."""
    if exists():
        raise RuntimeError(f"{NETNS_PATH} exists already: run `down` first")
    run(["ip", "netns", "add", config.NETNS])
    run(
        [
            "ip",
            "link",
            "add",
            config.HOST_VETH,
            "type",
            "veth",
            "peer",
            "name",
            config.NODE_VETH,
            "netns",
            config.NETNS,
        ]
    )
    run(["ip", "addr", "add", f"{config.HOST_IP}/30", "dev", config.HOST_VETH])
    run(["ip", "link", "set", config.HOST_VETH, "up"])
    node = [
        ("ip", "link", "set", "lo", "up"),
        ("ip", "addr", "add", f"{config.NODE_IP}/30", "dev", config.NODE_VETH),
        ("ip", "link", "set", config.NODE_VETH, "up"),
        # The node forwards between its veth and its pod bridge, and nowhere else.
        ("sysctl", "-qw", "net.ipv4.ip_forward=1"),
        ("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"),
        ("iptables", "-w", "-N", GUARD_CHAIN),
    ]
    for dst in (config.CLUSTER_CIDR, config.SERVICE_CIDR):
        node.append(("iptables", "-w", "-A", GUARD_CHAIN, "-d", dst, "-j", "RETURN"))
    # Towards the host's end of the veth only replies: pods answer the tests, never call out.
    node.append(
        (
            "iptables",
            "-w",
            "-A",
            GUARD_CHAIN,
            "-d",
            config.LINK_CIDR,
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "RETURN",
        )
    )
    node += [
        ("iptables", "-w", "-A", GUARD_CHAIN, "-j", "DROP"),
        ("iptables", "-w", "-I", "FORWARD", "1", "-j", GUARD_CHAIN),
    ]
    for cmd in node:
        run(in_node(cmd))
    for cidr in (config.CLUSTER_CIDR, config.SERVICE_CIDR):
        run(["ip", "route", "add", cidr, "via", config.NODE_IP, "dev", config.HOST_VETH])


def destroy() -> None:
    """Deleting the namespace takes its veth end, the bridge, its iptables and routes along;
    the host's end of the veth and the host routes through it go with the pair."""
    if exists():
        run(["ip", "netns", "delete", config.NETNS], check=False)
    if Path(f"/sys/class/net/{config.HOST_VETH}").exists():
        run(["ip", "link", "delete", config.HOST_VETH], check=False)


def read_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def save_host_sysctls(paths: Paths) -> None:
    """Record the host's kernel settings before `up` once; a crashed run keeps the first."""
    if paths.saved.exists():
        return
    saved = {name: read_sysctl(name) for name in config.HOST_SYSCTLS}
    saved["net.ipv4.ip_forward"] = read_sysctl("net.ipv4.ip_forward")
    paths.saved.parent.mkdir(parents=True, exist_ok=True)
    paths.saved.write_text(json.dumps({"sysctls": saved, "netns": _netns_names()}))


def restore_host_sysctls(paths: Paths) -> None:
    if not paths.saved.exists():
        return
    saved = json.loads(paths.saved.read_text())
    for name, value in saved["sysctls"].items():
        if read_sysctl(name) != value:
            say(f"restoring {name}={value} (was {read_sysctl(name)})")
            Path("/proc/sys", *name.split(".")).write_text(value)
    paths.saved.unlink()


def netns_before_up(paths: Paths) -> set[str]:
    if not paths.saved.exists():
        return set()
    return set(json.loads(paths.saved.read_text()).get("netns", []))


def _netns_names() -> list[str]:
    d = Path("/run/netns")
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def delete_pod_netns(names: set[str]) -> None:
    for name in sorted(names):
        if (Path("/run/netns") / name).exists():
            run(["ip", "netns", "delete", name], check=False)


def leftover_pod_netns(paths: Paths) -> set[str]:
    """cni-* namespaces that appeared since `up` (pod sandboxes of our containerd)."""
    before = netns_before_up(paths)
    return {n for n in _netns_names() if n.startswith("cni-") and n not in before}


def mounts_under(*roots: Path) -> list[str]:
    prefixes = tuple(str(r.resolve()) + "/" for r in roots if r.exists())
    if not prefixes:
        return []
    targets = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target.startswith(prefixes):
            targets.append(target)
    return targets


def unmount_under(*roots: Path) -> int:
    """Unmount everything mounted below our folders, deepest first; returns how many."""
    count = 0
    for _ in range(3):
        targets = mounts_under(*roots)
        if not targets:
            break
        for target in sorted(set(targets), key=lambda t: -t.count("/")):
            if run(["umount", target], check=False).returncode != 0:
                run(["umount", "-l", target], check=False)
            count += 1
    return count


def kubepods_cgroups() -> list[Path]:
    """The kubelet's cgroup trees (/kubepods in every v1 hierarchy)."""
    base = Path("/sys/fs/cgroup")
    return [
        h / "kubepods"
        for h in (base.iterdir() if base.exists() else [])
        if (h / "kubepods").is_dir()
    ]


def remove_kubepods_cgroups() -> None:
    """Remove the kubelet's cgroups, leaves first (their processes are gone by now)."""
    for top in kubepods_cgroups():
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, top]:
            with contextlib.suppress(OSError):
                os.rmdir(d)


def kill_kubepods_processes() -> int:
    """Any process still in a pod's cgroup (after a crash the shims may be gone)."""
    from .procs import kill_pid

    pids: set[int] = set()
    top = Path("/sys/fs/cgroup/pids/kubepods")
    if top.is_dir():
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                continue
    for pid in pids:
        kill_pid(pid, grace=0.5)
    return len(pids)

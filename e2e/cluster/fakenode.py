"""The optional fake node: kwok keeps a Node and its pods Running and Ready without running them.

Only for the operator's scale benchmark and its test (`up --fake-node`, or their fixture):
without it the cluster is exactly as before. How pods get there, with no operator change:
- The Node advertises an extended resource (`config.FAKE_NODE_RESOURCE`) that the real node
  lacks; a ModelDeployment meant for it requests one (`spec.server.resources`, a field the
  CRD has), so the scheduler can place its pods nowhere else.
- Every other pod must stay on the real node: the fake node carries a PreferNoSchedule taint
  (TaintToleration outweighs every other default score, so the scheduler always prefers the
  real node when a pod fits there) and has no CPU or memory to offer (a pod that requests any
  does not fit at all).
- Prometheus scrapes its pods at the scale exporter, never at their fake addresses (the
  `fake-node-pods` job of render.prometheus_config), with the target labels a real pod gets.
kwok runs inside the node's network namespace like the other daemons, with the admin
kubeconfig, and manages only Nodes labelled `config.FAKE_NODE_LABEL`.
"""

from __future__ import annotations

import json
from typing import Any

from . import config, probe, procs, render
from .config import Paths
from .sh import say, write

NAME = "kwok"
# Addresses kwok gives the fake pods (inside the cluster's range, never used for traffic).
FAKE_POD_CIDR = "10.244.255.0/24"


def node_manifest() -> dict[str, Any]:
    capacity = {
        "cpu": "0",
        "memory": "0",
        "pods": "5000",
        config.FAKE_NODE_RESOURCE: "100000",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.FAKE_NODE_NAME,
            "labels": {
                config.FAKE_NODE_LABEL: "true",
                "kubernetes.io/hostname": config.FAKE_NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {
            "taints": [
                {"key": config.FAKE_NODE_LABEL, "value": "true", "effect": "PreferNoSchedule"}
            ]
        },
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def kwok_argv(paths: Paths) -> list[str]:
    return [
        str(paths.kwok()),
        "--kubeconfig",
        str(paths.kubeconfig),
        "--manage-all-nodes=false",
        f"--manage-nodes-with-label-selector={config.FAKE_NODE_LABEL}=true",
        "--node-ip",
        config.NODE_IP,
        "--cidr",
        FAKE_POD_CIDR,
        "--node-lease-duration-seconds",
        "40",
    ]


def running(paths: Paths) -> bool:
    t = procs.tracked(paths).get(NAME)
    return t is not None and procs.alive(t)


def _node_ready(paths: Paths) -> bool:
    ctx = probe.admin_context(paths)
    try:
        obj = probe.get_json(f"{config.APISERVER_URL}/api/v1/nodes/{config.FAKE_NODE_NAME}", ctx)
    except (RuntimeError, ValueError):
        return False
    conds = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def ensure_prometheus_config(paths: Paths) -> None:
    """A cluster brought up before the fake node existed gets the current scrape config."""
    target = paths.prometheus_dir / "prometheus.yml"
    text = render.prometheus_config(paths)
    if target.exists() and target.read_text() == text:
        return
    write(target, text)
    code, body = probe.post(f"{config.PROMETHEUS_URL}/-/reload")
    if code != 200:
        raise RuntimeError(f"Prometheus did not reload its configuration: {code} {body}")
    say("prometheus: scrape configuration updated (fake-node-pods job)")


def ensure(paths: Paths) -> None:
    """Build kwok if needed, start it, register the fake Node and wait until it is Ready."""
    from .gobuild import build_binaries
    from .lifecycle import kubectl

    build_binaries(paths, only=(NAME,), nice=True)
    ensure_prometheus_config(paths)
    if not running(paths):
        procs.start(paths, NAME, kwok_argv(paths))
        say(f"kwok {config.KWOK_VERSION} started")
    manifest = json.dumps(node_manifest())
    kubectl(paths, "apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)
    probe.wait_for(f"node {config.FAKE_NODE_NAME} Ready", lambda: _node_ready(paths), 60)


def remove(paths: Paths) -> None:
    """Delete the fake Node (its pods go with it) and stop kwok."""
    from .lifecycle import kubectl

    kubectl(paths, "delete", "node", config.FAKE_NODE_NAME, "--ignore-not-found", check=False)
    procs.stop(paths, NAME)
    (paths.pids / f"{NAME}.json").unlink(missing_ok=True)

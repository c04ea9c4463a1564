"""modeldeploy as a user runs it, on the local cluster: the chart installed with helm (the
operator from our image, under the chart's RBAC, watching one restricted namespace), the
chart's Prometheus rules loaded into the cluster's Prometheus, and ModelDeployments of the
example bundles. Shared by the demo, the end-to-end tests and the rollback benchmark.

Rules are the chart's own file with shorter evaluation intervals and ``for`` durations, so a
rollout reacts in seconds rather than minutes (the expressions and thresholds are unchanged).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from e2e.cluster import workloads
from e2e.cluster.api import Cluster
from e2e.fileserver import Bundle
from e2e.traffic import Rows, example_rows, wait_answering

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "modeldeploy"
CHART_RULES = CHART / "rules" / "modeldeploy-rules.yaml"
RULES_NAME = "modeldeploy-e2e"
GROUP_INTERVAL = "2s"
ALERT_FOR = "6s"
# The one setting that differs from the CRD's defaults: a sample every 2 s instead of 30 s,
# so a rollout takes seconds. consecutiveErrorLimit, the alerts and the replicas are the
# defaults: start-up waits (it is no error) and alerts are matched by version.
ANALYSIS_INTERVAL = "2s"
KIND = "modeldeployment"
T = TypeVar("T")


def fast_rules(
    text: str | None = None, interval: str = GROUP_INTERVAL, for_: str = ALERT_FOR
) -> str:
    """The chart's rule file with every group's interval and every alert's ``for`` shortened."""
    text = CHART_RULES.read_text() if text is None else text
    text = re.sub(r"(?m)^(\s+interval:\s*)\S+$", rf"\g<1>{interval}", text)
    return re.sub(r"(?m)^(\s+for:\s*)\S+$", rf"\g<1>{for_}", text)


def load_rules(cluster: Cluster, owner: str) -> Path:
    """Put the (fast) chart rules into the cluster's Prometheus, in a file of ``owner`` (a
    namespace), so concurrent users each remove only their own. Two loaded copies compute
    identical series, so they do not disturb each other."""
    return cluster.add_rules(f"{RULES_NAME}-{owner}", fast_rules())


def unload_rules(cluster: Cluster, owner: str) -> None:
    # the file is gone; Prometheus may be restarting
    with contextlib.suppress(OSError, RuntimeError):
        cluster.remove_rules(f"{RULES_NAME}-{owner}")


def _split(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    return repo, tag


@dataclass(frozen=True)
class Stack:
    cluster: Cluster
    namespace: str
    release: str


def install(
    cluster: Cluster,
    namespace: str,
    release: str | None = None,
    replicas: int = 1,
    timeout: int = 240,
    operator_args: tuple[str, ...] = ("--analysis-interval", "1", "--resync-seconds", "1"),
    sets: tuple[str, ...] = (),
) -> Stack:
    """A restricted namespace with the chart installed into it, watching only it.

    The release is named after the namespace: the chart's cluster-wide RBAC objects carry the
    release's name, and other releases may share the cluster. ``operator_args`` are the
    operator's extra flags (fast polls for tests by default; ``()``: the chart's defaults);
    ``sets`` more ``--set KEY=VALUE`` of the chart's values."""
    release = release or namespace
    # Helm installs a chart's CRDs only when they are missing and never upgrades them, and
    # the cluster outlives every release: apply this tree's CRDs, so the apiserver checks
    # ModelDeployments against the schema under test, not the first install's.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.apply(workloads.namespace(namespace))
    repo, tag = _split(cluster.operator_image)
    server_repo, server_tag = _split(cluster.server_image)
    cluster.helm(
        "upgrade",
        "--install",
        release,
        str(CHART),
        "-n",
        namespace,
        "--set",
        "watch.scope=namespaces",
        "--set",
        f"watch.namespaces={{{namespace}}}",
        "--set",
        f"image.repository={repo}",
        "--set",
        f"image.tag={tag}",
        "--set",
        f"serverImage.repository={server_repo}",
        "--set",
        f"serverImage.tag={server_tag}",
        "--set",
        f"prometheus.url={cluster.prometheus_url}",
        "--set",
        f"replicaCount={replicas}",
        *(("--set-string", "extraArgs={" + ",".join(operator_args) + "}") if operator_args else ()),
        *(arg for value in sets for arg in ("--set", value)),
        "--wait",
        "--timeout",
        f"{timeout}s",
        timeout=timeout + 30,
    )
    return Stack(cluster, namespace, release)


def uninstall(stack: Stack) -> None:
    c, ns = stack.cluster, stack.namespace
    c.kubectl(
        "delete", "modeldeployments", "--all", "-n", ns, "--timeout=60s", check=False, timeout=90
    )
    c.helm("uninstall", stack.release, "-n", ns, "--wait", "--timeout", "60s", check=False)
    c.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def canary(*weights: int, analysis: str = "10s") -> dict[str, Any]:
    """Canary steps: each weight followed by an analysis of ``analysis``."""
    steps: list[dict[str, Any]] = []
    for w in weights:
        steps += [{"setWeight": w}, {"analysis": {"duration": analysis}}]
    return {"canary": {"steps": steps}}


def blue_green(
    pre: str = "20s", auto_seconds: int = 2, post: str | None = None, scale_down: int = 0
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "prePromotionAnalysis": {"duration": pre},
        "autoPromotionEnabled": True,
        "autoPromotionSeconds": auto_seconds,
        "scaleDownDelaySeconds": scale_down,
    }
    if post:
        spec["postPromotionAnalysis"] = {"duration": post}
    return {"blueGreen": spec}


def model_deployment(
    name: str,
    namespace: str,
    bundle: Bundle,
    strategy: dict[str, Any],
    # Not the CRD's 2: the canaries' 25/50/75% steps with the replicas router are shares of
    # pods, and 4 pods make them exact (blue/green and shadow tests pass the default, 2).
    replicas: int = 4,
    sha256: str | None = None,
    provider: dict[str, Any] | None = None,
    analysis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {
                "name": bundle.model,
                "version": bundle.version,
                "bundleURI": bundle.uri,
                "sha256": sha256 or bundle.sha256,
            },
            "replicas": replicas,
            "server": {
                "resources": {
                    "requests": {"cpu": "10m", "memory": "96Mi"},
                    "limits": {"memory": "512Mi"},
                }
            },
            "strategy": strategy,
            "trafficProvider": provider or {"replicas": {}},
            "analysis": {"interval": ANALYSIS_INTERVAL, **(analysis or {})},
            "progressDeadlineSeconds": 300,
        },
    }


def parse_ts(text: str | None) -> float:
    """Seconds since the epoch of a Kubernetes time (0 when absent)."""
    if not text:
        return 0.0
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def get(stack: Stack, name: str) -> dict[str, Any]:
    return dict(stack.cluster.kubectl_json("get", KIND, name, "-n", stack.namespace))


def status(stack: Stack, name: str) -> dict[str, Any]:
    return dict(get(stack, name).get("status") or {})


def service_ip(stack: Stack, name: str) -> str:
    return str(
        stack.cluster.kubectl_json("get", "service", name, "-n", stack.namespace)["spec"][
            "clusterIP"
        ]
    )


def answering_ip(stack: Stack, name: str, rows: Rows = example_rows) -> str:
    """The Service's address, once it answers. kube-proxy programs a new Service a moment
    after the Service and its Ready pods exist, and until then the node has no route for
    the address (the host's request fails with ENETUNREACH): traffic that starts at
    ``Healthy`` would count that start-up as a lost request."""
    ip = service_ip(stack, name)
    wait_answering(ip, rows=rows)
    return ip


def events(stack: Stack, name: str) -> list[dict[str, Any]]:
    """Events about the ModelDeployment, oldest first."""
    items = stack.cluster.kubectl_json(
        "get",
        "events",
        "-n",
        stack.namespace,
        "--field-selector",
        f"involvedObject.name={name},involvedObject.kind=ModelDeployment",
    )["items"]
    return sorted(
        items,
        key=lambda e: (
            e.get("lastTimestamp") or e.get("eventTime") or "",
            e["metadata"].get("creationTimestamp", ""),
        ),
    )


def wait(
    what: str,
    check: Callable[[], T | None],
    timeout: float = 180,
    interval: float = 1.0,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    extra = f"\n{detail()}" if detail else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r}){extra}")


def wait_phase(
    stack: Stack, name: str, *phases: str, timeout: float = 180, version: str | None = None
) -> dict[str, Any]:
    """The status once its phase is one of ``phases`` (and the stable is ``version``)."""

    def ok() -> dict[str, Any] | None:
        st = status(stack, name)
        if st.get("phase") in phases and (version is None or st.get("stableVersion") == version):
            return st
        return None

    return wait(
        f"{name} phase {phases} stable {version}", ok, timeout, detail=lambda: describe(stack, name)
    )


def describe(stack: Stack, name: str) -> str:
    """What a failed wait shows: status, pods and the last events."""
    c, ns = stack.cluster, stack.namespace
    st = c.kubectl("get", KIND, name, "-n", ns, "-o", "jsonpath={.status}", check=False).stdout
    pods = c.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False).stdout
    evs = "\n".join(f"{e.get('reason')}: {e.get('message')}" for e in events(stack, name)[-12:])
    return f"status: {st}\npods:\n{pods}\nevents:\n{evs}"

"""Routed providers and the generated PrometheusRule on the local cluster, with the real
Gateway API and Prometheus Operator CRDs (from their Go modules through the Go module proxy;
no gateway or Prometheus Operator runs: the objects and their schemas are what is tested)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opcluster import Env, operator_env, wait

from e2e.cluster.api import Cluster

pytestmark = pytest.mark.cluster

MODULES = {
    "httproutes.gateway.networking.k8s.io": (
        "sigs.k8s.io/gateway-api@v1.2.1",
        "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml",
    ),
    "prometheusrules.monitoring.coreos.com": (
        "github.com/prometheus-operator/prometheus-operator@v0.79.2",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
}


def module_dir(module: str) -> Path:
    cache = Path.home() / ".cache" / "modeldeploy" / "go-crds"
    env = {**os.environ, "GOMODCACHE": str(cache), "GOFLAGS": "-modcacherw", "GOTOOLCHAIN": "local"}
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", module],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"go mod download {module}: {exc}")
    if out.returncode != 0:
        pytest.skip(f"go mod download {module}: {out.stdout[-500:]}{out.stderr[-500:]}")
    return Path(json.loads(out.stdout)["Dir"])


@pytest.fixture(scope="module")
def routed_env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    installed = []
    for crd, (module, path) in MODULES.items():
        if cluster.kubectl("get", "crd", crd, check=False).returncode != 0:
            cluster.kubectl("apply", "--server-side", "-f", str(module_dir(module) / path))
            installed.append(crd)
        cluster.wait_established(crd)
    try:
        with operator_env(cluster, tmp_path_factory.mktemp("op") / "operator.log") as env:
            yield env
    finally:
        for crd in installed:
            # Wait for it to go: a CRD still terminating would look present to the next test.
            cluster.kubectl("delete", "crd", crd, "--timeout=120s", check=False)


def backends(env: Env, route: str) -> list[tuple[str, int]]:
    obj = env.get("httproute", route) or {}
    rules = (obj.get("spec") or {}).get("rules") or [{}]
    return [(b["name"], b["weight"]) for b in rules[0].get("backendRefs") or []]


def filters(env: Env, route: str) -> list[dict[str, Any]]:
    obj = env.get("httproute", route) or {}
    return list(((obj.get("spec") or {}).get("rules") or [{}])[0].get("filters") or [])


def test_gateway_canary_sets_route_weights_and_owns_a_prometheus_rule(routed_env: Env) -> None:
    env, name = routed_env, "routed"
    provider = {"gatewayAPI": {"httpRoute": f"{name}-route"}}
    steps = {"canary": {"steps": [{"setWeight": 30}, {"pause": {}}]}}
    analysis = {
        "interval": "2s",  # seconds, not the default 30 s, for the test's sake
        "thresholds": {"driftPSI": 0.1, "errorRate": 0.01},
    }
    env.apply(
        env.manifest(name, "v1", steps, replicas=2, trafficProvider=provider, analysis=analysis)
    )
    env.wait_phase(name, "Healthy", stableVersion="v1")
    assert wait("route to blue", lambda: backends(env, f"{name}-route") == [(f"{name}-blue", 100)])
    rule = env.get("prometheusrule", f"{name}-modeldeploy")
    assert rule is not None
    assert rule["metadata"]["ownerReferences"][0]["name"] == name
    exprs = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "> 0.1 " in exprs["ModelFeatureDrift"]
    assert "> 0.01 " in exprs["ModelHighErrorRate"]

    env.apply(
        env.manifest(name, "v2", steps, replicas=2, trafficProvider=provider, analysis=analysis)
    )
    env.wait_phase(name, "Paused", currentStep=1, canaryWeight=30)
    assert backends(env, f"{name}-route") == [(f"{name}-blue", 70), (f"{name}-green", 30)]
    assert env.replicas(name) == {"blue": 2, "green": 1}  # routed: the stable stays whole
    env.control(name, "promote-full")
    env.wait_phase(name, "Healthy", stableVersion="v2")
    assert wait(
        "route to green", lambda: backends(env, f"{name}-route") == [(f"{name}-green", 100)]
    )


def test_shadow_mirrors_to_the_candidate_then_promotes(routed_env: Env) -> None:
    env, name = routed_env, "shadowed"
    provider = {"gatewayAPI": {"httpRoute": f"{name}-route"}}
    # Long enough that a busy machine's slow polls still see the mirror while it is there.
    strategy = {"shadow": {"duration": "40s"}}
    env.apply(env.manifest(name, "v1", strategy, trafficProvider=provider))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    env.apply(env.manifest(name, "v2", strategy, trafficProvider=provider))
    env.wait_phase(name, "Progressing", candidateVersion="v2")
    mirror = wait("mirror filter", lambda: filters(env, f"{name}-route"))
    assert mirror[0]["type"] == "RequestMirror"
    assert mirror[0]["requestMirror"]["backendRef"]["name"] == f"{name}-green"
    assert backends(env, f"{name}-route") == [(f"{name}-blue", 100)]
    # No gateway runs here to copy requests to the shadow, so it serves no predictions: at
    # the defaults (minSamples 100, onInsufficientEvidence pause) it waits for a person,
    # still mirrored, and never promotes by itself.
    st = env.wait_phase(name, "Paused", candidateVersion="v2")
    assert st["pauseReason"].startswith("insufficient evidence: 0 of 100 predictions")
    assert filters(env, f"{name}-route")
    env.control(name, "promote")
    st = env.wait_phase(name, "Healthy", stableVersion="v2")
    assert st["history"][0]["outcome"] == "Promoted"
    assert wait(
        "no mirror after promotion",
        lambda: (
            not filters(env, f"{name}-route")
            and backends(env, f"{name}-route") == [(f"{name}-green", 100)]
        ),
    )

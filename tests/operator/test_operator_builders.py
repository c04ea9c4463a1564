"""The pure builders: Deployments, Services, routes and the PrometheusRule."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from opworld import SHA_B, T0, body, healthy, passing, spec, tick

from modeldeploy.operator import defaults as d
from modeldeploy.operator import engine
from modeldeploy.operator.builders import Owner, pod_role_patch, serve_args, services
from modeldeploy.operator.desired import children
from modeldeploy.operator.model import Actions, Observations, Spec
from modeldeploy.operator.promrules import rule_groups
from modeldeploy.server import contract as c

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner(name="iris", namespace="ml", uid="1234")
CHART_RULES = ROOT / "charts" / "modeldeploy" / "rules" / "modeldeploy-rules.yaml"


def rollout_actions(sp: Spec) -> Actions:
    world, status = healthy(
        Spec.from_body(
            body(strategy={"canary": {"steps": [{"setWeight": 50}]}}, provider=_provider_of(sp))
        )
    )
    v2 = Spec.from_body(
        {
            **body(),
            "spec": {
                **body()["spec"],
                **{
                    "model": {**body()["spec"]["model"], "version": "v2", "sha256": SHA_B},
                    "strategy": {sp.strategy: sp.strategy_spec},
                    "trafficProvider": {sp.provider: sp.provider_spec},
                },
            },
        }
    )
    _, actions = tick(world, v2, status, sample=passing(world.now))
    return actions


def _provider_of(sp: Spec) -> dict[str, Any]:
    return {sp.provider: sp.provider_spec}


CASES = {
    "canary-replicas": spec(strategy={"canary": {"steps": [{"setWeight": 30}]}}),
    "canary-gateway": spec(
        strategy={"canary": {"steps": [{"setWeight": 30}]}},
        provider={"gatewayAPI": {"httpRoute": "iris-route", "parentRefs": [{"name": "gw"}]}},
    ),
    "bluegreen-istio": spec(
        strategy={"blueGreen": {}}, provider={"istio": {"virtualService": "iris-vs"}}
    ),
    "shadow-gateway": spec(
        strategy={"shadow": {}}, provider={"gatewayAPI": {"httpRoute": "iris-route"}}
    ),
    "shadow-istio": spec(
        strategy={"shadow": {}}, provider={"istio": {"virtualService": "iris-vs"}}
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_pod_is_restricted_and_labelled(case: str) -> None:
    sp = CASES[case]
    actions = rollout_actions(sp)
    objs = children(OWNER, sp, actions, with_rule=True)
    deps = [o for o in objs if o["kind"] == "Deployment"]
    assert {o["metadata"]["name"] for o in deps} == {"iris-blue", "iris-green"}
    for dep in deps:
        pod = dep["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert labels[d.LABEL_NAME] == "iris" and labels[d.LABEL_SCRAPE] == "true"
        assert labels[d.LABEL_SLOT] in ("blue", "green")
        assert d.LABEL_ROLE not in labels, "the role must never be in the template"
        assert all(
            k.startswith("app.kubernetes.io/") or k.startswith("modeldeploy.io/") for k in labels
        )
        ann = pod["metadata"]["annotations"]
        assert ann["prometheus.io/port"] == str(c.DEFAULT_PORT)
        assert ann["prometheus.io/path"] == c.METRICS_PATH
        podspec = pod["spec"]
        assert podspec["securityContext"]["runAsNonRoot"] is True
        assert podspec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert podspec["automountServiceAccountToken"] is False
        for ctr in podspec["initContainers"] + podspec["containers"]:
            sc = ctr["securityContext"]
            assert sc["runAsUser"] == 10001 and sc["runAsNonRoot"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert ctr["image"] == "modeldeploy-server:dev"
        fetch = podspec["initContainers"][0]
        assert fetch["command"][:2] == ["modeldeploy", "fetch"]
        server = podspec["containers"][0]
        assert server["readinessProbe"]["httpGet"]["path"] == c.READY_PATH
        assert server["livenessProbe"]["httpGet"]["path"] == c.LIVE_PATH
        assert dep["metadata"]["ownerReferences"][0]["uid"] == "1234"
        assert dep["metadata"]["annotations"][d.ANNOTATION_REVISION]
        sel = dep["spec"]["selector"]["matchLabels"]
        assert all(labels[k] == v for k, v in sel.items())


def test_serve_command_uses_the_contract_flags() -> None:
    actions = rollout_actions(CASES["canary-replicas"])
    green = next(a for a in actions.deployments if a.slot == "green")
    args = serve_args(green)
    assert tuple(args[:2]) == c.SERVE_COMMAND
    assert args[args.index(c.FLAG_SHA256) + 1] == SHA_B
    assert args[args.index(c.FLAG_ROLE) + 1] == "candidate"
    assert args[args.index(c.FLAG_PORT) + 1] == str(c.DEFAULT_PORT)
    assert args[args.index(c.FLAG_ROLE) + 1] in c.ROLES


def test_replicas_provider_canary_service_selects_both_slots() -> None:
    sp = CASES["canary-replicas"]
    svcs = {
        s["metadata"]["name"]: s["spec"]["selector"]
        for s in services(OWNER, sp, rollout_actions(sp))
    }
    assert svcs["iris"] == {d.LABEL_NAME: "iris"}
    assert svcs["iris-canary"] == {d.LABEL_NAME: "iris", d.LABEL_SLOT: "green"}
    assert svcs["iris-blue"][d.LABEL_SLOT] == "blue"


def test_blue_green_active_and_preview_services() -> None:
    sp = CASES["bluegreen-istio"]
    actions = rollout_actions(sp)

    def selectors(a: object) -> dict[str, dict[str, str]]:
        return {s["metadata"]["name"]: s["spec"]["selector"] for s in services(OWNER, sp, a)}

    svcs = selectors(actions)
    assert svcs["iris"] == {d.LABEL_NAME: "iris", d.LABEL_SLOT: "blue"}
    # No Ready candidate pod yet: the preview stays on the stable, then moves.
    assert svcs["iris-preview"] == {d.LABEL_NAME: "iris", d.LABEL_SLOT: "blue"}
    ready = selectors(dataclasses.replace(actions, candidate_ready=True))
    assert ready["iris-preview"] == {d.LABEL_NAME: "iris", d.LABEL_SLOT: "green"}


def test_http_route_weights_and_mirror() -> None:
    sp = CASES["canary-gateway"]
    # The step's weight, as the route gets it once the candidate's pods are Ready (until then
    # it is held at what they can take: test_operator_engine_capacity).
    actions = dataclasses.replace(rollout_actions(sp), weight=30)
    route = next(
        o for o in children(OWNER, sp, actions, with_rule=False) if o["kind"] == "HTTPRoute"
    )
    assert route["metadata"]["name"] == "iris-route"
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"name": "iris-blue", "port": c.DEFAULT_PORT, "weight": 70},
        {"name": "iris-green", "port": c.DEFAULT_PORT, "weight": 30},
    ]
    assert route["spec"]["parentRefs"] == [{"name": "gw"}]
    sp = CASES["shadow-gateway"]
    route = next(
        o
        for o in children(OWNER, sp, rollout_actions(sp), with_rule=False)
        if o["kind"] == "HTTPRoute"
    )
    rule = route["spec"]["rules"][0]
    assert rule["backendRefs"] == [{"name": "iris-blue", "port": c.DEFAULT_PORT, "weight": 100}]
    assert rule["filters"][0]["requestMirror"]["backendRef"]["name"] == "iris-green"


def test_virtual_service_weights_and_mirror() -> None:
    sp = CASES["shadow-istio"]
    vs = next(
        o
        for o in children(OWNER, sp, rollout_actions(sp), with_rule=False)
        if o["kind"] == "VirtualService"
    )
    http = vs["spec"]["http"][0]
    assert [r["weight"] for r in http["route"]] == [100]
    assert http["mirror"]["host"] == "iris-green"
    assert vs["spec"]["hosts"] == ["iris"]


def test_pod_role_patch_touches_only_the_role_label() -> None:
    assert pod_role_patch("stable") == {"metadata": {"labels": {d.LABEL_ROLE: "stable"}}}


def test_prometheus_rule_uses_the_thresholds_and_the_chart_names() -> None:
    sp = spec(analysis={"thresholds": {"driftPSI": 0.1, "errorRate": 0.02, "for": "1m"}})
    groups = rule_groups(OWNER, sp)
    rules = {r["alert"]: r for r in groups[0]["rules"]}
    assert set(rules) == {*d.DEFAULT_ALERTS, *d.OPT_IN_ALERTS}
    assert "> 0.1 " in rules[d.ALERT_DRIFT]["expr"]
    assert "> 0.02 " in rules[d.ALERT_ERROR_RATE]["expr"]
    assert all('modeldeployment="iris"' in r["expr"] for r in rules.values())
    assert rules[d.ALERT_DRIFT]["for"] == "1m"
    chart = yaml.safe_load(CHART_RULES.read_text())
    chart_alerts = {r["alert"] for g in chart["groups"] for r in g["rules"] if "alert" in r}
    chart_records = {r["record"] for g in chart["groups"] for r in g["rules"] if "record" in r}
    assert set(d.DEFAULT_ALERTS) <= chart_alerts
    used = {m for r in rules.values() for m in re.findall(r"modeldeploy:[a-z0-9_:]+", r["expr"])}
    assert used and used <= chart_records


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(OWNER, spec())}))
    res = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_actions_are_idempotent_for_the_same_status() -> None:
    world, status = healthy()
    sp = spec()
    obs = Observations(slots=world.observe())
    _, a1 = engine.reconcile(sp, status, obs, T0)
    _, a2 = engine.reconcile(sp, status, obs, T0)
    assert children(OWNER, sp, a1, with_rule=True) == children(OWNER, sp, a2, with_rule=True)


def test_pods_keep_serving_while_their_endpoints_go() -> None:
    """Scaled down or replaced: serve through the endpoint removal, then shut down gracefully."""
    from modeldeploy.operator.builders import PRE_STOP_SECONDS, TERMINATION_GRACE_SECONDS

    sp = Spec.from_body(body())
    objs = children(OWNER, sp, rollout_actions(sp), with_rule=False)
    for dep in (o for o in objs if o["kind"] == "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        server = next(c for c in pod["containers"] if c["name"] == "server")
        assert server["lifecycle"]["preStop"]["exec"]["command"] == [
            "sleep",
            str(PRE_STOP_SECONDS),
        ]
        assert pod["terminationGracePeriodSeconds"] == TERMINATION_GRACE_SECONDS
        assert TERMINATION_GRACE_SECONDS > PRE_STOP_SECONDS + 10  # room for in-flight work


def test_deployments_scaled_to_zero_are_applied_after_services_and_routes() -> None:
    """A rollback: the candidate's Deployment goes to 0 only once the Services (and a route)
    no longer point at it, and the stable's runs before them."""
    sp = CASES["canary-gateway"]
    actions = dataclasses.replace(
        rollout_actions(sp),
        deployments=tuple(
            dataclasses.replace(dep, replicas=0 if dep.slot == "green" else 4)
            for dep in rollout_actions(sp).deployments
        ),
        candidate_slot=None,
        weight=0,
    )
    kinds = [
        (o["kind"], o["metadata"]["name"]) for o in children(OWNER, sp, actions, with_rule=True)
    ]
    assert kinds[0] == ("Deployment", "iris-blue")
    assert kinds.index(("Deployment", "iris-green")) > max(
        i for i, (kind, _) in enumerate(kinds) if kind in ("Service", "HTTPRoute")
    )

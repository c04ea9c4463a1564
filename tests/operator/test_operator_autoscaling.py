"""``spec.autoscaling``: the HorizontalPodAutoscaler on the ModelDeployment's scale
subresource, the status it reads, and a rollout whose replica count an autoscaler moves."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from opworld import SHA_B, body, healthy, passing, tick

from modeldeploy.operator import converge
from modeldeploy.operator import defaults as d
from modeldeploy.operator.autoscaling import Autoscaling, scale_status
from modeldeploy.operator.builders import Owner
from modeldeploy.operator.desired import children
from modeldeploy.operator.model import Spec, SpecError
from modeldeploy.operator.schema import crd

OWNER = Owner(name="iris", namespace="ml", uid="1234")
CPU = {"resources": {"requests": {"cpu": "250m"}}}


QUARTER = {"canary": {"steps": [{"setWeight": 25}, {"pause": {"duration": "1h"}}]}}


def autoscaled(replicas: int = 4, strategy: Any = None, **scaling: Any) -> dict[str, Any]:
    raw = body(replicas=replicas, strategy=strategy)
    raw["spec"]["server"].update(CPU)
    raw["spec"]["autoscaling"] = scaling or {"maxReplicas": 8}
    return raw


def hpas(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]


def test_the_autoscaler_scales_the_model_deployment_on_the_stable_pods_cpu() -> None:
    sp = Spec.from_body(autoscaled(minReplicas=2, maxReplicas=6))
    world, status = healthy(sp)
    _, actions = tick(world, sp, status, sample=passing(world.now))
    [hpa] = hpas(children(OWNER, sp, actions, with_rule=True))
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["metadata"]["name"] == "iris"
    assert hpa["metadata"]["ownerReferences"][0]["uid"] == "1234"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": d.API_VERSION,
        "kind": d.KIND,
        "name": "iris",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": d.AUTOSCALING_TARGET_CPU},
    }


def test_no_autoscaler_unless_asked_and_a_removed_one_is_deleted() -> None:
    sp = Spec.from_body(body())
    world, status = healthy(sp)
    _, actions = tick(world, sp, status, sample=passing(world.now))
    objs = children(OWNER, sp, actions, with_rule=True)
    assert sp.autoscaling is None and hpas(objs) == []
    present = {("HorizontalPodAutoscaler", "iris"): "g1", ("Deployment", "iris-blue"): "g1"}
    assert converge.stale_children(sp, objs, present) == [("HorizontalPodAutoscaler", "iris")]
    assert converge.stale_children(sp, objs, {}) == []
    on = Spec.from_body(autoscaled())
    assert converge.stale_children(on, children(OWNER, on, actions, with_rule=True), present) == []


@pytest.mark.parametrize(
    ("scaling", "server", "message"),
    [
        ({"minReplicas": 5, "maxReplicas": 3}, CPU, r"at most maxReplicas \(3\)"),
        ({"minReplicas": 1}, CPU, "spec.autoscaling.maxReplicas is required"),
        ({"maxReplicas": 3}, {}, "spec.server.resources.requests.cpu"),
    ],
)
def test_invalid_autoscaling_is_a_spec_error_naming_the_field(
    scaling: dict[str, Any], server: dict[str, Any], message: str
) -> None:
    raw = body()
    raw["spec"]["server"].update(server)
    raw["spec"]["autoscaling"] = scaling
    with pytest.raises(SpecError, match=message):
        Spec.from_body(raw)


def test_defaults_match_the_schema() -> None:
    scaling = Autoscaling.from_spec({"autoscaling": {"maxReplicas": 3}, "server": CPU})
    assert scaling == Autoscaling(d.AUTOSCALING_MIN_REPLICAS, 3, d.AUTOSCALING_TARGET_CPU)
    version = crd()["spec"]["versions"][0]
    props = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    schema = props["autoscaling"]["properties"]
    assert schema["minReplicas"]["default"] == scaling.min_replicas
    assert schema["targetCPUUtilizationPercentage"]["default"] == scaling.target_cpu
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"replicas", "selector"} <= set(status)


def test_scale_status_selects_the_stable_slots_pods() -> None:
    assert scale_status("iris", "green", 3) == {
        "replicas": 3,
        "selector": "modeldeploy.io/name=iris,modeldeploy.io/slot=green",
    }
    assert scale_status("iris", None, 0) == {"replicas": 0, "selector": "modeldeploy.io/name=iris"}


def test_replicas_are_not_the_revision_so_scaling_starts_no_rollout() -> None:
    sp = Spec.from_body(autoscaled(replicas=4))
    world, status = healthy(sp)
    more = Spec.from_body(autoscaled(replicas=7))
    assert more.template.revision == sp.template.revision
    status, actions = tick(world, more, status, sample=passing(world.now))
    assert not status.active and status.stable_version == "v1"
    assert {dep.slot: dep.replicas for dep in actions.deployments if dep.replicas} == {"blue": 7}


def test_a_count_the_autoscaler_moves_mid_canary_keeps_the_weight_a_share_of_it() -> None:
    """Scaled from 4 to 8 at 25%: the candidate is sized from the new count (2 of 8, still a
    quarter of the pods behind the Service), and the stable grows back to its share."""
    sp = Spec.from_body(autoscaled(replicas=4, strategy=QUARTER))
    world, status = healthy(sp)
    v2 = copy.deepcopy(autoscaled(replicas=4, strategy=QUARTER))
    v2["spec"]["model"].update(version="v2", sha256=SHA_B)
    for _ in range(3):
        status, actions = tick(world, Spec.from_body(v2), status, sample=passing(world.now))
    assert status.canary_weight == 25
    counts = {dep.slot: dep.replicas for dep in actions.deployments}
    assert counts == {"blue": 3, "green": 1}
    v2["spec"]["replicas"] = 8
    for _ in range(2):
        status, actions = tick(world, Spec.from_body(v2), status, sample=passing(world.now))
    assert status.canary_weight == 25 and status.traffic_share == 25
    assert {dep.slot: dep.replicas for dep in actions.deployments} == {"blue": 6, "green": 2}

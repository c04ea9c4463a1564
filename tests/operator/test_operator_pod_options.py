"""spec.server's pod options: parsing and its errors, what reaches both slots' Deployments,
the PodDisruptionBudgets, and that changing only them starts no model rollout."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from opworld import SHA_B, body, healthy, passing, tick

from modeldeploy.operator import converge
from modeldeploy.operator import defaults as d
from modeldeploy.operator.builders import (
    Owner,
    deployment,
    disruption_budget,
    restricted_container_security,
    restricted_pod_security,
)
from modeldeploy.operator.desired import children
from modeldeploy.operator.model import Actions, Spec, SpecError
from modeldeploy.operator.podoptions import ENV_PREFIX, SERVER_ENV_NAMES
from modeldeploy.operator.schema import crd
from modeldeploy.server import contract as c

OWNER = Owner(name="iris", namespace="ml", uid="1234")
SPREAD_ZONE = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone"}
OWN_SELECTOR = {"matchLabels": {"app": "iris"}}
OPTIONS: dict[str, Any] = {
    "nodeSelector": {"pool": "models"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}
                ]
            }
        }
    },
    "topologySpreadConstraints": [
        {**SPREAD_ZONE, "whenUnsatisfiable": "ScheduleAnyway"},
        {
            "maxSkew": 2,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": OWN_SELECTOR,
        },
    ],
    "priorityClassName": "models-high",
    "imagePullSecrets": [{"name": "registry-a"}],
    "env": [
        {"name": "OMP_NUM_THREADS", "value": "1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}},
    ],
    "serviceAccountName": "iris-runner",
    "podDisruptionBudget": {"maxUnavailable": 1},
}


SAME = (
    "nodeSelector",
    "tolerations",
    "affinity",
    "priorityClassName",
    "imagePullSecrets",
    "serviceAccountName",
    "automountServiceAccountToken",
    "securityContext",
)


def with_server(raw: dict[str, Any], **server: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    out["spec"]["server"] = {**out["spec"]["server"], **server}
    return out


def rollout(sp_body: dict[str, Any]) -> tuple[Spec, Actions]:
    """A canary of v2 in progress (both slots have a Deployment) under ``sp_body``'s options."""
    world, status = healthy(Spec.from_body(sp_body))
    v2 = copy.deepcopy(sp_body)
    v2["spec"]["model"].update(version="v2", sha256=SHA_B)
    sp = Spec.from_body(v2)
    _, actions = tick(world, sp, status, sample=passing(world.now))
    assert {dep.slot for dep in actions.deployments} == {"blue", "green"}
    return sp, actions


def test_every_option_reaches_both_slots_pod_templates_identically() -> None:
    sp, actions = rollout(with_server(body(), **OPTIONS))
    pods = {}
    for dep in actions.deployments:
        pod = deployment(OWNER, sp, dep)["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"pool": "models"}
        assert pod["tolerations"] == OPTIONS["tolerations"]
        assert pod["affinity"] == OPTIONS["affinity"]
        assert pod["priorityClassName"] == "models-high"
        assert pod["imagePullSecrets"] == [{"name": "registry-a"}]
        assert pod["serviceAccountName"] == "iris-runner"
        assert pod["automountServiceAccountToken"] is False
        server = pod["containers"][0]
        # the user's env, then the pod's own address (never asked when forwarding labels)
        assert server["env"][:-1] == OPTIONS["env"]
        assert server["env"][-1] == {
            "name": c.ENV_POD_IP,
            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
        }
        assert "env" not in pod["initContainers"][0], "the user's env is the server's only"
        # The topology spread without a labelSelector selects the slot's own pods.
        spread = pod["topologySpreadConstraints"]
        own = {d.LABEL_NAME: "iris", d.LABEL_SLOT: dep.slot}
        assert spread[0] == {
            **SPREAD_ZONE,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": own},
        }
        assert spread[1]["labelSelector"] == OWN_SELECTOR, "a given selector is kept"
        assert all(spread[0]["labelSelector"]["matchLabels"][k] == v for k, v in own.items())
        # The restricted profile is untouched by any option.
        assert pod["securityContext"] == restricted_pod_security()
        for ctr in pod["initContainers"] + pod["containers"]:
            assert ctr["securityContext"] == restricted_container_security()
        pods[dep.slot] = {k: pod.get(k) for k in SAME} | {"env": server["env"]}
    assert pods["blue"] == pods["green"]


def test_defaults_set_no_pod_option_and_no_token() -> None:
    sp, actions = rollout(body())
    for dep in actions.deployments:
        pod = deployment(OWNER, sp, dep)["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        for key in (
            "serviceAccountName",
            "nodeSelector",
            "tolerations",
            "affinity",
            "topologySpreadConstraints",
            "priorityClassName",
            "imagePullSecrets",
        ):
            assert key not in pod, key
        # only the pod's own address, which the servers need to forward labels
        assert [e["name"] for e in pod["containers"][0]["env"]] == [c.ENV_POD_IP]
    assert not [o for o in children(OWNER, sp, actions, with_rule=True) if _is_pdb(o)]


def test_the_token_is_mounted_only_when_asked_for_with_a_named_account() -> None:
    named = Spec.from_body(with_server(body(), serviceAccountName="runner"))
    assert named.pod.pod_spec({})["automountServiceAccountToken"] is False
    asked = with_server(body(), serviceAccountName="runner", automountServiceAccountToken=True)
    assert Spec.from_body(asked).pod.pod_spec({})["automountServiceAccountToken"] is True
    with pytest.raises(SpecError, match="automountServiceAccountToken needs .*serviceAccountName"):
        Spec.from_body(with_server(body(), automountServiceAccountToken=True))


def _is_pdb(obj: dict[str, Any]) -> bool:
    return bool(obj["kind"] == "PodDisruptionBudget")


@pytest.mark.parametrize("budget", [{"maxUnavailable": 1}, {"minAvailable": "50%"}])
def test_one_disruption_budget_per_slot_selecting_its_pods(budget: dict[str, Any]) -> None:
    sp, actions = rollout(with_server(body(), podDisruptionBudget=budget))
    objs = children(OWNER, sp, actions, with_rule=True)
    pdbs = {o["metadata"]["name"]: o for o in objs if _is_pdb(o)}
    assert set(pdbs) == {"iris-blue", "iris-green"}
    for slot in ("blue", "green"):
        pdb = pdbs[f"iris-{slot}"]
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["metadata"]["namespace"] == "ml"
        assert pdb["metadata"]["ownerReferences"] == [OWNER.reference()]
        assert pdb["spec"] == {
            **budget,
            "selector": {"matchLabels": {d.LABEL_NAME: "iris", d.LABEL_SLOT: slot}},
        }
        dep = next(o for o in objs if o["metadata"]["name"] == f"iris-{slot}" and _is_dep(o))
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert all(labels[k] == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    assert disruption_budget(OWNER, Spec.from_body(body()), "blue") is None


def _is_dep(obj: dict[str, Any]) -> bool:
    return bool(obj["kind"] == "Deployment")


def test_removed_budgets_are_stale_only_when_they_exist() -> None:
    sp, actions = rollout(body())
    objs = children(OWNER, sp, actions, with_rule=True)
    seen = {("PodDisruptionBudget", "iris-blue"): "g1", ("Deployment", "iris-blue"): "g1"}
    assert converge.stale_children(sp, objs, seen) == [("PodDisruptionBudget", "iris-blue")]
    assert converge.stale_children(sp, objs, {}) == []
    with_pdb, actions = rollout(with_server(body(), podDisruptionBudget={"minAvailable": 1}))
    objs = children(OWNER, with_pdb, actions, with_rule=True)
    both = {("PodDisruptionBudget", f"iris-{s}"): "g1" for s in ("blue", "green")}
    assert converge.stale_children(with_pdb, objs, both) == []


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"env": [{"name": "MODELDEPLOY_SHA256", "value": "x"}]}, "model server's own settings"),
        ({"env": [{"name": "1X", "value": "x"}]}, r"env\[0\].name: '1X' is not"),
        ({"env": [{"name": "A", "value": "1"}, {"name": "A"}]}, "A is set twice"),
        (
            {"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
            "value or valueFrom, not both",
        ),
        ({"env": [{"name": "A", "valueFrom": {}}]}, "exactly one of secretKeyRef"),
        (
            {"podDisruptionBudget": {"maxUnavailable": 1, "minAvailable": 1}},
            "exactly one of maxUnavailable, minAvailable",
        ),
        ({"podDisruptionBudget": {}}, "exactly one of maxUnavailable, minAvailable"),
    ],
)
def test_invalid_options_are_spec_errors_naming_the_field(
    server: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        Spec.from_body(with_server(body(), **server))


def test_every_env_name_the_pods_read_is_reserved() -> None:
    assert all(name.startswith(ENV_PREFIX) for name in SERVER_ENV_NAMES)
    for name in SERVER_ENV_NAMES:
        with pytest.raises(SpecError, match=name):
            Spec.from_body(with_server(body(), env=[{"name": name, "value": "x"}]))


def test_pod_options_cannot_reach_a_security_context() -> None:
    server = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["server"]

    def keys(schema: Any) -> set[str]:
        if isinstance(schema, dict):
            out = set(schema.get("properties") or {})
            for v in schema.values():
                out |= keys(v)
            return out
        if isinstance(schema, list):
            return set().union(*(keys(v) for v in schema)) if schema else set()
        return set()

    found = keys(server)
    assert "env" in found and "tolerations" in found
    assert not {k for k in found if "ecurity" in k or k in ("hostNetwork", "privileged")}
    preserving = list(server["properties"]["affinity"]["properties"])
    assert preserving == ["nodeAffinity", "podAffinity", "podAntiAffinity"]
    assert "x-kubernetes-preserve-unknown-fields" not in server["properties"]["affinity"]


def test_changing_only_pod_options_starts_no_rollout_and_reaches_both_slots() -> None:
    """Pod options are not the model's revision: a change of them alone keeps the stable,
    starts no candidate, and re-renders every slot's Deployment with the new options
    (the Deployments then roll their pods in place)."""
    sp, actions = rollout(body())
    world, status = healthy(Spec.from_body(body()))
    moved = Spec.from_body(with_server(body(), **OPTIONS))
    assert moved.template.revision == Spec.from_body(body()).template.revision
    after, acts = tick(world, moved, status, sample=passing(world.now))
    assert after.stable_revision == status.stable_revision and not after.candidate_revision
    assert after.phase == "Healthy"
    assert not acts.events
    for dep in acts.deployments:
        pod = deployment(OWNER, moved, dep)["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"pool": "models"}
        assert dep.revision == status.stable_revision
    # Mid-rollout too, both slots' Deployments carry the options of the current spec.
    for dep in actions.deployments:
        assert deployment(OWNER, moved, dep)["spec"]["template"]["spec"]["nodeSelector"]

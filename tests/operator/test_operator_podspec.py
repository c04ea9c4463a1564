"""spec.server's pod options on the local cluster: the real CRD's admission (OpenAPI and CEL),
the Deployments and pods that carry the options, one PodDisruptionBudget per slot that the
disruption controller counts the slot's pods under, and that goes when the option goes."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opcluster import CANARY, Env, operator_env, wait

from e2e.cluster.api import Cluster
from modeldeploy.server.contract import ENV_POD_IP

pytestmark = pytest.mark.cluster

NAME = "podspec"
SLOTS = ("blue", "green")


@pytest.fixture(scope="module")
def env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with operator_env(cluster, tmp_path_factory.mktemp("podspec") / "operator.log") as e:
        yield e


@pytest.fixture(scope="module")
def priority_class(env: Env) -> Iterator[str]:
    """A PriorityClass of this test's own (cluster-scoped, so deleted afterwards)."""
    name = f"md-podspec-{uuid.uuid4().hex[:6]}"
    obj = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": 1000}
    obj["metadata"] = {"name": name}
    env.cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))
    try:
        yield name
    finally:
        env.cluster.kubectl("delete", "priorityclass", name, "--wait=false", check=False)


def options(priority: str) -> dict[str, Any]:
    """Every pod option, with values the local cluster's one node can schedule."""
    return {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "models", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 10,
                        "preference": {
                            "matchExpressions": [
                                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}
                            ]
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
        "priorityClassName": priority,
        "imagePullSecrets": [{"name": "pull"}],
        "env": [
            {"name": "EXTRA_SETTING", "value": "on"},
            {
                "name": "POD_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
            },
        ],
        "serviceAccountName": "runner",
        "podDisruptionBudget": {"maxUnavailable": 1},
    }


def manifest(env: Env, version: str, server: dict[str, Any]) -> dict[str, Any]:
    out = env.manifest(NAME, version, CANARY)
    out["spec"]["server"] = server
    return out


def refused(env: Env, server: dict[str, Any]) -> str:
    res = env.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        check=False,
        input=json.dumps(manifest(env, "v1", server)),
    )
    assert res.returncode != 0, server
    return str(res.stderr)


def test_the_crd_refuses_bad_pod_options_with_a_clear_message(env: Env) -> None:
    cases = {
        "are the model server's own settings": {
            "env": [{"name": "MODELDEPLOY_SHA256", "value": "0" * 64}]
        },
        "an env var has value or valueFrom": {
            "env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]
        },
        "exactly one of maxUnavailable, minAvailable": {
            "podDisruptionBudget": {"maxUnavailable": 1, "minAvailable": 1}
        },
        "automountServiceAccountToken needs serviceAccountName": {
            "automountServiceAccountToken": True
        },
        "a toleration with operator Exists has no value": {
            "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]
        },
        "spec.server.topologySpreadConstraints[0].whenUnsatisfiable": {
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}]
        },
        "spec.server.affinity.nodeAffinitty": {"affinity": {"nodeAffinitty": {}}},
        "a number of pods (0 or more) or a percent": {"podDisruptionBudget": {"minAvailable": "x"}},
    }
    for message, server in cases.items():
        err = refused(env, server)
        assert message in err, (message, err)


def deployment_pod(env: Env, slot: str) -> dict[str, Any]:
    dep = env.get("deployment", f"{NAME}-{slot}")
    assert dep, slot
    return dict(dep["spec"]["template"]["spec"])


def budget(env: Env, slot: str) -> dict[str, Any] | None:
    return env.get("poddisruptionbudget", f"{NAME}-{slot}")


def test_every_option_is_accepted_reaches_both_slots_and_the_budgets_follow(
    env: Env, priority_class: str
) -> None:
    env.kubectl("create", "serviceaccount", "runner")
    pull = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull"}}
    pull |= {"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{}"}}
    env.kubectl("apply", "-f", "-", input=json.dumps(pull))
    server = options(priority_class)
    env.apply(manifest(env, "v1", server))
    env.wait_phase(NAME, "Healthy", stableVersion="v1")
    pod = deployment_pod(env, "blue")
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod[key] == server[key], key
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    assert pod["serviceAccountName"] == "runner" and pod["automountServiceAccountToken"] is False
    assert pod["topologySpreadConstraints"] == [
        {
            **server["topologySpreadConstraints"][0],
            "labelSelector": {
                "matchLabels": {"modeldeploy.io/name": NAME, "modeldeploy.io/slot": "blue"}
            },
        }
    ]
    # the user's env, then the pod's own address (the servers forward labels to their peers)
    env_vars = pod["containers"][0]["env"]
    assert env_vars[:-1] == server["env"]
    assert env_vars[-1]["name"] == ENV_POD_IP  # (the apiserver adds fieldRef's apiVersion)
    assert env_vars[-1]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    # The running pod: Ready under the options, no token, the restricted profile intact.
    running = env.pods(NAME, "blue")[0]
    assert running["spec"]["priorityClassName"] == priority_class
    assert running["spec"]["serviceAccountName"] == "runner"
    assert not [
        m
        for c in running["spec"]["containers"]
        for m in c.get("volumeMounts", [])
        if "serviceaccount" in m["mountPath"]
    ]
    assert running["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] is True

    # A rollout fills the other slot: both slots' templates carry the options, and each
    # slot has its budget, counting that slot's pods.
    env.apply(manifest(env, "v2", server))
    env.wait_phase(NAME, "Healthy", stableVersion="v2")
    history = len(env.status(NAME)["history"])
    pods = {slot: deployment_pod(env, slot) for slot in SLOTS}
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pods["blue"][key] == pods["green"][key] == server[key], key
    for slot in SLOTS:
        pdb = budget(env, slot)
        assert pdb and pdb["spec"]["maxUnavailable"] == 1, slot
        assert pdb["spec"]["selector"]["matchLabels"]["modeldeploy.io/slot"] == slot
        assert pdb["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    wait(
        "the stable slot's pods counted by its budget",
        lambda: (budget(env, "green") or {}).get("status", {}).get("expectedPods") == 1,
    )

    # Pod options alone: no model rollout; both Deployments roll their pods in place.
    moved = copy.deepcopy(server)
    moved["env"][0]["value"] = "off"
    env.apply(manifest(env, "v2", moved))

    def rolled() -> bool:
        pods = env.pods(NAME, "green")
        return bool(pods) and all(
            p["spec"]["containers"][0]["env"][0]["value"] == "off"
            and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"]
            )
            for p in pods
        )

    wait("stable pods rolled in place with the new env", rolled)
    st = env.wait_phase(NAME, "Healthy", stableVersion="v2")
    assert len(st["history"]) == history and not st.get("candidateVersion")
    assert deployment_pod(env, "blue")["containers"][0]["env"][0]["value"] == "off"

    # The option removed: both budgets go, the ModelDeployment stays.
    del moved["podDisruptionBudget"]
    env.apply(manifest(env, "v2", moved))
    wait("budgets deleted", lambda: all(budget(env, s) is None for s in SLOTS))
    assert env.wait_phase(NAME, "Healthy", stableVersion="v2")

"""``spec.autoscaling`` on the real local cluster: the apiserver's admission of it, and the
real HorizontalPodAutoscaler controller (kube-controller-manager's) scaling a ModelDeployment
through its scale subresource while the operator sizes the slots from that count.

The cluster serves no resource metrics API, so the autoscaler cannot measure CPU here; what
it does without metrics is hold the count inside minReplicas..maxReplicas, which is the part
that must work with the operator (the count it writes reaches the slots, a rollout sizes the
candidate from it). Its CPU arithmetic is Kubernetes' own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from admission import dry_run
from opcluster import CANARY, Env, operator_env

from e2e.cluster.api import Cluster
from e2e.stack import wait

pytestmark = pytest.mark.cluster

NAME = "scaled"
SCALING = {"minReplicas": 3, "maxReplicas": 4}
CPU = {"resources": {"requests": {"cpu": "10m"}}}


@pytest.fixture(scope="module")
def env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with operator_env(cluster, tmp_path_factory.mktemp("operator") / "operator.log") as e:
        yield e


def manifest(env: Env, version: str, **spec: Any) -> dict[str, Any]:
    """No ``replicas``: with an autoscaler the count is the autoscaler's (as a GitOps manifest
    should leave it), so applying the manifest again never scales it back."""
    out = env.manifest(NAME, version, CANARY, server=CPU, **spec)
    del out["spec"]["replicas"]
    return out


def test_admission_refuses_an_autoscaler_it_could_not_run(env: Env) -> None:
    assert dry_run(env.cluster, manifest(env, "v1", autoscaling=SCALING)) == (0, "")
    code, err = dry_run(
        env.cluster, manifest(env, "v1", autoscaling={"minReplicas": 5, "maxReplicas": 2})
    )
    assert code != 0 and "minReplicas must not exceed maxReplicas" in err, err
    no_cpu = manifest(env, "v1", autoscaling=SCALING)
    del no_cpu["spec"]["server"]
    code, err = dry_run(env.cluster, no_cpu)
    assert code != 0 and "autoscaling needs server.resources.requests.cpu" in err, err


def test_the_autoscaler_sets_the_count_the_rollout_is_sized_from(env: Env) -> None:
    env.apply(manifest(env, "v1", autoscaling=SCALING))
    hpa = wait("the HorizontalPodAutoscaler", lambda: env.get("hpa", NAME), 60)
    assert hpa["metadata"]["ownerReferences"][0]["name"] == NAME
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "ModelDeployment"

    # The CRD's default is 2; the autoscaler raises it to its minimum through /scale.
    def scaled() -> dict[str, Any] | None:
        md = env.get("modeldeployment", NAME) or {}
        return md if (md.get("spec") or {}).get("replicas") == SCALING["minReplicas"] else None

    wait("spec.replicas set by the autoscaler", scaled, 120)
    out = env.kubectl("get", "modeldeployment", NAME, "-o", "json", "--show-managed-fields")
    fields = json.loads(out.stdout)["metadata"]["managedFields"]
    writers = {(f["manager"], f.get("subresource", "")) for f in fields}
    assert any(sub == "scale" for _, sub in writers), writers
    st = env.wait_phase(NAME, "Healthy", stableVersion="v1")
    assert wait("stable at 3", lambda: env.replicas(NAME) == {"blue": 3})
    st = wait("status.replicas", lambda: (s := env.status(NAME)).get("replicas") == 3 and s, 60)
    assert st["selector"] == f"modeldeploy.io/name={NAME},modeldeploy.io/slot=blue"
    scale = json.loads(env.kubectl("get", "--raw", scale_path(env)).stdout)
    assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == st["selector"]

    # A canary at 50% of the autoscaler's 3: the candidate gets ceil(1.5) = 2 pods and the
    # stable gives up floor(1.5) = 1 (2 of 4 pods: the 50% status reports), then the
    # promoted slot runs all 3.
    env.apply(manifest(env, "v2", autoscaling=SCALING))
    st = env.wait_phase(NAME, "Progressing", candidateVersion="v2", canaryWeight=50)
    assert wait("split of 3", lambda: env.replicas(NAME) == {"blue": 2, "green": 2})
    assert env.status(NAME)["trafficShare"] == 50
    env.wait_phase(NAME, "Healthy", stableVersion="v2")
    assert wait("promoted at 3", lambda: env.replicas(NAME) == {"blue": 0, "green": 3})
    st = wait("selector follows the stable", lambda: "slot=green" in env.status(NAME)["selector"])

    # Autoscaling turned off: the operator deletes the autoscaler it made.
    env.apply(manifest(env, "v2"))
    wait("autoscaler deleted", lambda: env.get("hpa", NAME) is None, 60)


def scale_path(env: Env) -> str:
    return f"/apis/modeldeploy.io/v1alpha1/namespaces/{env.namespace}/modeldeployments/{NAME}/scale"

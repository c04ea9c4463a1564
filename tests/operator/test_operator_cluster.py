"""The operator against the real local cluster: real apiserver, kubelet, pods of the server
image fetching real bundles, real Prometheus. The operator runs as a subprocess (the same
``modeldeploy operator`` command the image runs) watching one restricted namespace
(``opcluster``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from opcluster import CANARY, Env, operator_env

from e2e.cluster.api import Cluster
from e2e.stack import wait

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with operator_env(cluster, tmp_path_factory.mktemp("operator") / "operator.log") as e:
        yield e


def test_invalid_manifests_are_refused_with_a_clear_message(env: Env) -> None:
    cases = {
        "setWeight must not decrease": {
            "canary": {"steps": [{"setWeight": 50}, {"setWeight": 20}]}
        },
        "exactly one of canary, blueGreen, shadow": {
            "canary": {"steps": [{"setWeight": 5}]},
            "blueGreen": {},
        },
        "each step has exactly one of setWeight, pause, analysis": {
            "canary": {"steps": [{"setWeight": 5, "pause": {}}]}
        },
        "should be less than or equal to 100": {"canary": {"steps": [{"setWeight": 101}]}},
        "shadow needs trafficProvider gatewayAPI, istio or traefik": {"shadow": {}},
    }
    for message, strategy in cases.items():
        res = env.kubectl(
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            check=False,
            input=json.dumps(env.manifest("bad", "v1", strategy)),
        )
        assert res.returncode != 0 and message in res.stderr, (message, res.stderr)
    bad_sha = env.manifest("bad", "v1", CANARY)
    bad_sha["spec"]["model"]["sha256"] = "xyz"
    res = env.kubectl(
        "apply", "--dry-run=server", "-f", "-", check=False, input=json.dumps(bad_sha)
    )
    assert res.returncode != 0 and "spec.model.sha256" in res.stderr
    refused = {
        "exactly one of replicas, gatewayAPI, istio, traefik must be set": {
            "traefik": {"traefikService": "t"},
            "istio": {"virtualService": "v"},
        },
        "spec.trafficProvider.traefik.traefikService": {"traefik": {}},
    }
    for message, provider in refused.items():
        bad = env.manifest("bad", "v1", CANARY, trafficProvider=provider)
        res = env.kubectl(
            "apply", "--dry-run=server", "-f", "-", check=False, input=json.dumps(bad)
        )
        assert res.returncode != 0 and message in res.stderr, (message, res.stderr)
    # a shadow through the traefik provider is admitted
    good = env.manifest(
        "good", "v1", {"shadow": {}}, trafficProvider={"traefik": {"traefikService": "t"}}
    )
    res = env.kubectl("apply", "--dry-run=server", "-f", "-", check=False, input=json.dumps(good))
    assert res.returncode == 0, res.stderr


def test_create_then_canary_to_a_new_version_without_restarting_pods(env: Env) -> None:
    name = "canary"
    env.apply(env.manifest(name, "v1", CANARY, replicas=2))
    st = env.wait_phase(name, "Healthy", stableVersion="v1")
    assert st["stableSlot"] == "blue" and st["observedGeneration"] == 1
    ready = {c["type"]: c["status"] for c in st["conditions"]}
    assert ready["Ready"] == "True" and ready["Reconciling"] == "False"
    wait(
        "stable pods labelled",
        lambda: all(
            p["metadata"]["labels"].get("modeldeploy.io/role") == "stable"
            for p in env.pods(name, "blue")
        ),
    )
    table = env.kubectl("get", "md", name).stdout
    assert table.split()[:6] == ["NAME", "STRATEGY", "PHASE", "STABLE", "CANDIDATE", "WEIGHT"]
    assert "canary" in table and "Healthy" in table and "v1" in table
    # pods run restricted, with the bundle fetched by the init container
    pod = env.pods(name, "blue")[0]
    assert pod["spec"]["initContainers"][0]["command"][:2] == ["modeldeploy", "fetch"]
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True

    env.apply(env.manifest(name, "v2", CANARY, replicas=2))
    st = env.wait_phase(name, "Progressing", candidateVersion="v2", canaryWeight=50)
    assert st["candidateSlot"] == "green" and st["observedGeneration"] == 2
    cand = wait(
        "candidate pod labelled",
        lambda: [
            p
            for p in env.pods(name, "green")
            if p["metadata"]["labels"].get("modeldeploy.io/role") == "candidate"
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ],
    )
    uids = {p["metadata"]["uid"] for p in cand}
    # Make before break: the stable gives up its pod once the operator has seen the
    # candidate's Ready (the next reconcile), not before.
    assert wait("stable scaled to its share", lambda: env.replicas(name) == {"blue": 1, "green": 1})
    st = env.wait_phase(name, "Healthy", stableVersion="v2")
    assert st["stableSlot"] == "green" and not st.get("candidateVersion")
    assert st["history"][0]["outcome"] == "Promoted" and st["history"][0]["version"] == "v2"
    assert wait("old slot scaled down", lambda: env.replicas(name) == {"blue": 0, "green": 2})
    # the candidate's pods became stable by label: same pods, no restart
    stable = wait(
        "promoted pods relabelled",
        lambda: [
            p
            for p in env.pods(name, "green")
            if p["metadata"]["labels"].get("modeldeploy.io/role") == "stable"
            and p["metadata"]["uid"] in uids
        ],
    )
    assert stable and all(
        c.get("restartCount", 0) == 0 for p in stable for c in p["status"]["containerStatuses"]
    )
    reasons = {e["reason"] for e in env.events(name)}
    assert {"Deploying", "RolloutStarted", "WeightSet", "Promoted", "RolloutCompleted"} <= reasons
    svc = env.get("service", name)
    assert svc and svc["spec"]["selector"] == {"modeldeploy.io/name": name}


def test_blue_green_preview_then_switch(env: Env) -> None:
    name = "bg"
    strategy = {"blueGreen": {"autoPromotionSeconds": 4, "scaleDownDelaySeconds": 5}}
    env.apply(env.manifest(name, "v1", strategy))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    env.apply(env.manifest(name, "v2", strategy))
    env.wait_phase(name, "Progressing", candidateVersion="v2")

    def slots() -> tuple[str, str] | None:
        """The slots the preview and the active Service select, once the preview moved."""
        preview, active = (env.get("service", s) or {} for s in (f"{name}-preview", name))
        got = tuple(
            (svc.get("spec") or {}).get("selector", {}).get("modeldeploy.io/slot", "")
            for svc in (preview, active)
        )
        return (got[0], got[1]) if got[0] == "green" else None

    # The preview moves to the candidate once the candidate has a Ready pod (before, it
    # keeps selecting the stable, so it never points at no Ready pod); the active Service
    # stays on the stable until the promotion, at least autoPromotionSeconds later.
    _, active_slot = wait("the preview selects the Ready candidate", slots)
    assert active_slot == "blue"
    wait("both slots full size", lambda: env.replicas(name) == {"blue": 1, "green": 1})
    st = env.wait_phase(name, "Healthy", stableVersion="v2")
    assert st["stableSlot"] == "green"
    active = env.get("service", name)
    assert active and active["spec"]["selector"]["modeldeploy.io/slot"] == "green"
    assert env.replicas(name) == {"blue": 0, "green": 1}


def test_firing_alert_rolls_back_and_records_the_rule(env: Env) -> None:
    name = "alerting"
    steps = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}
    env.apply(env.manifest(name, "v1", steps))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    rules = {
        "groups": [
            {
                "name": f"test-{env.namespace}",
                "rules": [
                    {
                        "alert": "ModelFeatureDrift",
                        "expr": "count by (namespace, modeldeployment, role) "
                        f'(up{{namespace="{env.namespace}",'
                        f' modeldeployment="{name}", role="candidate"}} == 1) * 0.37',
                        "labels": {"severity": "warning"},
                    }
                ],
            }
        ]
    }
    rule_name = f"md-op-{env.namespace}"
    env.cluster.add_rules(rule_name, rules)
    try:
        env.apply(env.manifest(name, "v3", steps))
        st = env.wait_phase(name, "Degraded", timeout=240)
        top = st["history"][0]
        assert top["outcome"] == "RolledBack" and top["reason"] == "AnalysisFailed"
        assert "ModelFeatureDrift" in top["message"] and "0.37" in top["message"]
        took = datetime.fromisoformat(
            top["finishedAt"].replace("Z", "+00:00")
        ) - datetime.fromisoformat(top["startedAt"].replace("Z", "+00:00"))
        print(
            f"rollback: {took.total_seconds():.0f}s from the start of the rollout (pods "
            f"fetched, scraped, alert firing) to the rollback"
        )
        assert st["stableVersion"] == "v1" and st["abortedRevision"]
        cond = {c["type"]: c for c in st["conditions"]}
        assert cond["Stalled"]["status"] == "True" and cond["Ready"]["status"] == "False"
        assert wait("candidate scaled to 0", lambda: env.replicas(name).get("green") == 0)
        rolled = [e for e in env.events(name) if e["reason"] == "RolledBack"]
        assert rolled and rolled[0]["type"] == "Warning" and "0.37" in rolled[0]["message"]
        assert 'modeldeploy_operator_rollouts_total{outcome="RolledBack"}' in env.operator.metrics()
        # the same spec stays rolled back
        time.sleep(5)
        assert env.status(name)["phase"] == "Degraded"
    finally:
        env.cluster.remove_rules(rule_name)


def test_controls_pause_resume_promote_abort_retry(env: Env) -> None:
    name = "controls"
    steps = {
        "canary": {"steps": [{"setWeight": 0}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]}
    }
    env.apply(env.manifest(name, "v1", steps))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    env.apply(env.manifest(name, "v2", steps))
    env.wait_phase(name, "Paused", currentStep=1)
    env.control(name, "promote")
    env.wait_phase(name, "Paused", currentStep=3, canaryWeight=50)
    env.control(name, "abort")
    st = env.wait_phase(name, "Degraded")
    assert st["history"][0]["outcome"] == "Aborted"
    env.control(name, "retry")
    env.wait_phase(name, "Paused", currentStep=1, candidateVersion="v2")
    env.control(name, "pause")
    st = env.wait_phase(name, "Paused", paused=True)
    env.control(name, "resume")  # ends the manual pause and the indefinite pause step
    env.wait_phase(name, "Paused", currentStep=3)
    env.control(name, "promote-full")
    st = env.wait_phase(name, "Healthy", stableVersion="v2")
    assert [h["outcome"] for h in st["history"][:2]] == ["Promoted", "Aborted"]
    assert st["lastControl"] == "promote-full"


def test_operator_killed_mid_rollout_resumes_at_the_same_step(env: Env) -> None:
    name = "restart"
    steps = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}}
    env.apply(env.manifest(name, "v1", steps, replicas=2))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    env.apply(env.manifest(name, "v2", steps, replicas=2))
    before = env.wait_phase(name, "Paused", currentStep=1, canaryWeight=50)
    env.operator.kill()
    env.operator.start()
    time.sleep(8)  # several resync periods of the new operator
    after = env.status(name)
    for key in (
        "currentStep",
        "canaryWeight",
        "stepStartedAt",
        "rolloutStartedAt",
        "candidateSlot",
        "history",
    ):
        assert after.get(key) == before.get(key), key
    assert env.replicas(name) == {"blue": 1, "green": 1}
    started = [e for e in env.events(name) if e["reason"] == "RolloutStarted"]
    assert sum(e.get("count", 1) for e in started) == 1
    env.control(name, "promote")
    st = env.wait_phase(name, "Healthy", stableVersion="v2")
    assert st["history"][0]["outcome"] == "Promoted"


def test_deletion_cleans_up_every_child(env: Env) -> None:
    name = "deleted"
    env.apply(env.manifest(name, "v1", CANARY))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    assert env.get("deployment", f"{name}-blue") and env.get("service", name)
    env.kubectl("delete", "modeldeployment", name, "--wait=true", "--timeout=60s")

    def gone() -> bool:
        return not any(
            env.get(kind, n)
            for kind, n in (
                ("deployment", f"{name}-blue"),
                ("deployment", f"{name}-green"),
                ("service", name),
                ("service", f"{name}-canary"),
                ("service", f"{name}-blue"),
            )
        )

    wait("children garbage-collected", gone, timeout=120)

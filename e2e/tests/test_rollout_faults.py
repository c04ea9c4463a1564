"""What goes wrong, on the real cluster: a bundle whose digest does not match never becomes
ready and traffic stays on the stable; a malformed ModelDeployment is refused by the
apiserver with a clear message; the operator killed mid-rollout resumes at the same step; an
unreachable Prometheus never promotes and rolls back after the error limit."""

from __future__ import annotations

import time

import pytest

from e2e import stack as st

from .rollout_env import Env, assert_none_lost, env  # noqa: F401

pytestmark = pytest.mark.cluster


def test_malformed_model_deployment_is_refused_with_a_clear_message(env: Env) -> None:  # noqa: F811
    bad = st.model_deployment(
        "malformed",
        env.stack.namespace,
        env.bundles["v1"],
        {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 20}]}},
        sha256="not-a-digest",
    )
    proc = env.cluster.kubectl("apply", "-f", "-", input=__import__("json").dumps(bad), check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert "spec.model.sha256" in err and "should match" in err, err
    assert "setWeight" in err or "never decrease" in err or "isSorted" in err, err
    gone = env.cluster.kubectl("get", st.KIND, "malformed", "-n", env.stack.namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_bundle_with_wrong_sha256_never_ready_and_traffic_stays_on_stable(env: Env) -> None:  # noqa: F811
    name = "digest"
    env.deploy(name, "v1", st.canary(50, analysis="5s"))
    env.healthy(name, "v1")
    with env.traffic(name, rate=15, max_seconds=300) as traffic:
        b = env.bundles["v2"]
        wrong = "0" * 64
        env.cluster.apply(
            st.model_deployment(
                name,
                env.stack.namespace,
                b,
                st.canary(50, analysis="5s"),
                sha256=wrong,
            )
        )
        # The candidate's pods exist but never get ready; the stable keeps every request.
        time.sleep(40)
        pods = env.cluster.kubectl_json(
            "get", "pods", "-n", env.stack.namespace, "-l", f"modeldeploy.io/name={name}"
        )["items"]
        candidates = [
            p for p in pods if p["metadata"]["labels"].get("modeldeploy.io/slot") == "green"
        ]
        assert candidates, [p["metadata"]["name"] for p in pods]
        for p in candidates:
            ready = [c.get("ready") for c in p["status"].get("containerStatuses", [])]
            assert ready and not any(ready), p["status"]
        status = st.status(env.stack, name)
        assert status["stableVersion"] == "v1" and status.get("candidateVersion") == "v2"
        assert status["phase"] != "Healthy"
        assert set(traffic.snapshot().by_version) == {"v1"}
    assert_none_lost(traffic.tally)


def test_operator_killed_mid_rollout_resumes_at_the_same_step(env: Env) -> None:  # noqa: F811
    name = "restart"
    strategy = {
        "canary": {
            "steps": [{"setWeight": 25}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 75}]
        }
    }
    env.deploy(name, "v1", strategy)
    env.healthy(name, "v1")
    env.deploy(name, "v2", strategy)
    before = st.wait(
        "waiting at the pause",
        lambda: (lambda s: s if s.get("currentStep") == 2 and s.get("phase") == "Paused" else None)(
            st.status(env.stack, name)
        ),
        180,
        detail=lambda: st.describe(env.stack, name),
    )
    assert before["canaryWeight"] == 50
    ns = env.stack.namespace
    pods = env.cluster.kubectl_json(
        "get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={env.stack.release}"
    )["items"]
    old = {p["metadata"]["uid"] for p in pods}
    env.cluster.kubectl(
        "delete",
        "pod",
        "-n",
        ns,
        "--grace-period=0",
        "--force",
        *[p["metadata"]["name"] for p in pods],
    )

    def new_operator_ready() -> bool:
        items = env.cluster.kubectl_json(
            "get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={env.stack.release}"
        )["items"]
        return any(
            p["metadata"]["uid"] not in old
            and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
            for p in items
        )

    st.wait("a new operator pod ready", new_operator_ready, 180)
    time.sleep(6)  # several resyncs of the new operator
    after = st.status(env.stack, name)
    assert (after["currentStep"], after["canaryWeight"], after["phase"]) == (2, 50, "Paused")
    # The new operator acts on it: promote past the pause, the rollout completes.
    env.control(name, "promote")
    done = env.finished(name, "v2")
    assert done["outcome"] == "Promoted", done


def test_unreachable_prometheus_never_promotes_and_rolls_back_at_the_error_limit(env: Env) -> None:  # noqa: F811
    name = "noprom"
    env.deploy(name, "v1", st.canary(50, analysis="4s"))
    env.healthy(name, "v1")
    # A Prometheus URL inside the cluster's own network where nothing listens.
    dead = f"http://{env.cluster.node_ip}:9"
    env.deploy(
        name,
        "v2",
        st.canary(50, analysis="4s"),
        analysis={"prometheusURL": dead},
    )
    rolled = env.finished(name, "v2", timeout=180)
    assert rolled["outcome"] == "RolledBack" and rolled["reason"] == "AnalysisInconclusive"
    assert "4 inconclusive" in rolled["message"], rolled  # the default consecutiveErrorLimit
    events = st.events(env.stack, name)
    inconclusive = [e for e in events if e["reason"] == "AnalysisInconclusive"]
    assert inconclusive and "Prometheus" in inconclusive[0]["message"]
    status = st.status(env.stack, name)
    assert status["stableVersion"] == "v1" and status["canaryWeight"] == 0
    assert not any(h.get("outcome") == "Promoted" for h in status.get("history") or [])

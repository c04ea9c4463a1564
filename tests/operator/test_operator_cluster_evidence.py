"""Evidence, concurrency and repair against the real local cluster: the real apiserver, the
cluster's Prometheus (with and without the chart's rules loaded) and real model pods.

Every ModelDeployment here is at the CRD's defaults except ``analysis.interval`` (2 s
instead of 30 s, so that a test takes seconds, not minutes) and where a test says why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from opcluster import Env, Operator, free_port, operator_env

from e2e.cluster import probe
from e2e.cluster.api import Cluster
from e2e.stack import CHART_RULES, wait
from modeldeploy.operator import engine, handlers
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.kube import ApiClientKube
from modeldeploy.operator.metrics import OperatorMetrics
from modeldeploy.operator.model import Observations, Spec
from modeldeploy.operator.runtime import Config, Runtime

pytestmark = pytest.mark.cluster

CANARY = {"canary": {"steps": [{"setWeight": 50}, {"analysis": {"duration": "10s"}}]}}


@pytest.fixture(scope="module")
def env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with operator_env(cluster, tmp_path_factory.mktemp("evidence") / "operator.log") as e:
        yield e


def manifest(env: Env, name: str, version: str, **analysis: Any) -> dict[str, Any]:
    m = env.manifest(name, version, CANARY, replicas=2)
    m["spec"]["analysis"] = {"interval": "2s", **analysis}  # consecutiveErrorLimit: default
    m["spec"].pop("progressDeadlineSeconds", None)
    return m


def history(env: Env, name: str) -> list[dict[str, Any]]:
    return list(env.status(name).get("history") or [])


def test_a_misspelt_alert_never_promotes_and_says_which_alert_and_where(env: Env) -> None:
    """The chart's rules are loaded (``operator_env``), but the named alert is misspelt: it
    is "not a loaded alerting rule", the same check as for rules never loaded."""
    name = "unloaded"
    env.apply(manifest(env, name, "v1"))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    env.apply(manifest(env, name, "v2", alerts=["ModelPredictionDivergense"]))
    st = env.wait_phase(name, "Degraded", timeout=300)
    assert st["stableVersion"] == "v1"
    top = history(env, name)[0]
    assert top["version"] == "v2" and top["reason"] == "AnalysisInconclusive"
    where = env.cluster.prometheus_url
    assert (
        f"alert ModelPredictionDivergense is not a loaded alerting rule in {where}"
        in (top["message"])
    )
    events = [e["message"] for e in env.events(name) if e["reason"] == "AnalysisInconclusive"]
    assert any("ModelPredictionDivergense is not a loaded alerting rule" in m for m in events)


def test_no_traffic_pauses_for_evidence(env: Env) -> None:
    """The chart's rules are loaded and the candidate is scraped, but nobody calls it."""
    name = "idle"
    env.apply(manifest(env, name, "v1"))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    env.apply(manifest(env, name, "v2"))
    st = env.wait_phase(name, "Paused", timeout=300, candidateVersion="v2")
    assert st["pauseReason"].startswith("insufficient evidence: 0 of 100 predictions")
    assert st["stableVersion"] == "v1" and st["analysis"]["outcome"] == "Passed"
    assert any(e["reason"] == "InsufficientEvidence" for e in env.events(name))


def test_deleted_and_edited_children_are_restored_within_a_resync(env: Env) -> None:
    name = "repair"
    env.apply(manifest(env, name, "v1"))
    env.wait_phase(name, "Healthy", stableVersion="v1")
    svc = env.get("service", name)
    assert svc is not None
    uid = svc["metadata"]["uid"]
    dep = env.get("deployment", f"{name}-blue")
    assert dep is not None
    dep_uid = dep["metadata"]["uid"]
    started = time.monotonic()
    env.kubectl("delete", "service", name, "--wait=true")
    env.kubectl("delete", "deployment", f"{name}-blue", "--wait=false")
    wait(
        "service restored",
        lambda: (env.get("service", name) or {}).get("metadata", {}).get("uid") not in (None, uid),
        timeout=30,
    )
    wait(
        "deployment restored",
        lambda: (
            (env.get("deployment", f"{name}-blue") or {}).get("metadata", {}).get("uid")
            not in (None, dep_uid)
        ),
        timeout=30,
    )
    restored = time.monotonic() - started
    # A hand edit of a field the operator owns is undone too.
    env.kubectl(
        "patch",
        "service",
        f"{name}-blue",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"selector": {"modeldeploy.io/slot": "green"}}}),
    )
    wait(
        "selector restored",
        lambda: (
            (env.get("service", f"{name}-blue") or {})["spec"]["selector"].get(
                "modeldeploy.io/slot"
            )
            == "blue"
        ),
        timeout=30,
    )
    # The test operator resyncs every second: restored within a few resyncs, not 300 s.
    assert restored < 30
    print(f"children restored {restored:.1f}s after deletion")


def test_two_status_writers_never_overwrite_each_other(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer A decides on a stale read while writer B already wrote the status: A's write
    carries the resourceVersion it read, the apiserver answers 409, A re-reads and decides
    again on B's status instead of overwriting it."""
    name = "writers"
    # kopf posts Events only from inside a running operator; this reconcile runs outside.
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **kw: None)
    env.operator.stop()  # the two writers of this test are the only ones
    try:
        m = manifest(env, name, "v1")
        env.apply(m)
        obj = wait("created", lambda: env.get("modeldeployment", name), timeout=30)
        stale = kopf.Body(obj)
        # Writer B: deployed v1 into slot green (the engine's decision, moved to green).
        sp = Spec.from_body(obj, default_image=env.cluster.server_image)
        first, _ = engine.reconcile(sp, RolloutStatus(), Observations(), datetime.now(UTC))
        first.stable_slot = "green"
        first.slots = {"green": first.slots["blue"]}
        b_status = first.to_json()
        kube = ApiClientKube.from_environment(str(env.cluster.kubeconfig))
        asyncio.run(kube.patch_status("ModelDeployment", env.namespace, name, b_status))
        # Writer A: the operator's reconcile, on the body read before B wrote.
        rt = Runtime(
            config=Config(server_image=env.cluster.server_image),
            kube=kube,
            metrics=OperatorMetrics.create(),
        )
        asyncio.run(handlers.reconcile(rt, stale, None, None, trigger="test"))
        conflicts = rt.metrics.errors.labels(kind="conflict")._value.get()
        assert conflicts == 1, "A's stale write was refused once"
        st = env.status(name)
        # A decided again on B's status: the stale decision (v1 into blue) never landed.
        assert st["stableSlot"] == "green" and list(st["slots"]) == ["green"], st
    finally:
        env.kubectl("delete", "modeldeployment", name, "--wait=false", check=False)
        env.operator.start()


def test_a_stale_alert_of_a_previous_version_never_counts(env: Env) -> None:
    """A rolled-back candidate's alert stays firing for its window; it names its version, and
    the next candidate is promoted while it fires. ``minSamples: 0``: this test is about the
    alert's version, and nobody sends the candidate traffic here."""
    stale = f"stale-{env.namespace}"
    env.cluster.add_rules(
        stale,
        {
            "groups": [
                {
                    "name": stale,
                    "interval": "2s",
                    "rules": [
                        {
                            "alert": "ModelPredictionDivergence",
                            "expr": "vector(24.8)",
                            "labels": {
                                "namespace": env.namespace,
                                "modeldeployment": "stale",
                                "role": "candidate",
                                "version": "v3",
                            },
                        }
                    ],
                }
            ]
        },
    )
    try:
        name = "stale"
        env.apply(manifest(env, name, "v1", minSamples=0))
        env.wait_phase(name, "Healthy", stableVersion="v1")
        firing = env.cluster.wait_for_query(
            f'ALERTS{{alertstate="firing", modeldeployment="stale", '
            f'namespace="{env.namespace}", version="v3"}}'
        )
        assert firing
        env.apply(manifest(env, name, "v2", minSamples=0))
        env.wait_phase(name, "Healthy", stableVersion="v2", timeout=300)
        assert not [h for h in history(env, name) if h["outcome"] == "RolledBack"]
    finally:
        env.cluster.remove_rules(stale)


@pytest.fixture
def empty_prometheus(tmp_path: Path) -> Iterator[str]:
    """A second, real Prometheus on loopback with the chart's rules loaded and nothing to
    scrape: every named alert is a loaded rule, but no pod is ever scraped."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
                "rule_files": [str(CHART_RULES)],
                "scrape_configs": [],
            }
        )
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def loaded() -> bool:
        try:
            code, body = probe.get(f"{url}/api/v1/rules?type=alert", timeout=2)
        except OSError:
            return False
        return code == 200 and "ModelHighLatency" in body

    try:
        wait("empty Prometheus up with the chart's rules", loaded, timeout=60)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_unscraped_candidate_waits_then_fails_at_the_deadline(
    env: Env, empty_prometheus: str
) -> None:
    """Ready pods that this Prometheus never scrapes: the analysis waits (no inconclusive
    count), and the progress deadline ends it with a clear message. The deadline is 60 s
    here, not the default 600 s, so the test takes a minute."""
    name = "unscraped"
    m = manifest(env, name, "v1", prometheusURL=empty_prometheus)
    m["spec"]["progressDeadlineSeconds"] = 60
    env.apply(m)
    env.wait_phase(name, "Healthy", stableVersion="v1")
    m = manifest(env, name, "v2", prometheusURL=empty_prometheus)
    m["spec"]["progressDeadlineSeconds"] = 60
    env.apply(m)
    st = wait(
        "waiting for the candidate",
        lambda: (s := env.status(name)).get("analysis", {}).get("outcome") == "Waiting" and s,
        timeout=120,
    )
    assert "waiting for the candidate v2: no metrics" in st["analysis"]["message"]
    assert st.get("consecutiveErrors", 0) == 0
    st = env.wait_phase(name, "Degraded", timeout=240)
    top = history(env, name)[0]
    assert top["reason"] == "ProgressDeadlineExceeded"
    # Ready and never scraped: that is the reason (unless the pods were still starting,
    # when the message gives their not-ready reason instead).
    assert top["message"].startswith("candidate v2 not ready after 60s: ")
    assert f"its pods are not scraped by {empty_prometheus}" in top["message"] or (
        "container" in top["message"]
    )
    assert st["stableVersion"] == "v1"


def test_a_firing_alert_takes_the_weight_to_zero_within_two_seconds(
    env: Env, tmp_path: Path
) -> None:
    """At the defaults that matter here: the ModelDeployment's analysis.interval (30 s) and
    the operator's own (2 s full Prometheus poll, 5 s resync): the one-second alerts poll wakes
    the ModelDeployment, whose candidate weight is 0 at most 2 s after Prometheus marked
    the alert firing."""
    env.operator.stop()
    op = Operator(
        env.cluster,
        env.namespace,
        tmp_path / "operator.log",
        extra=("--resync-seconds", "5", "--analysis-interval", "2"),  # the defaults
    )
    rule = f"react-{env.namespace}"
    kube = ApiClientKube.from_environment(str(env.cluster.kubeconfig))
    name = "react"
    try:
        op.start()
        slow = {"canary": {"steps": [{"setWeight": 50}, {"analysis": {"duration": "10m"}}]}}
        m = env.manifest(name, "v1", slow, replicas=2)
        m["spec"]["analysis"] = {}  # every analysis setting at its default
        m["spec"].pop("progressDeadlineSeconds", None)
        env.apply(m)
        env.wait_phase(name, "Healthy", stableVersion="v1")
        m["spec"]["model"].update(
            version="v2", bundleURI=f"{env.bundles}/v2.tar.gz", sha256=env.sha["v2"]
        )
        env.apply(m)
        env.wait_phase(name, "Progressing", currentStep=1, canaryWeight=50, timeout=300)
        labels = {
            "namespace": env.namespace,
            "modeldeployment": name,
            "role": "candidate",
            "version": "v2",
        }
        env.cluster.add_rules(
            rule,
            {
                "groups": [
                    {
                        "name": rule,
                        "interval": "1s",
                        "rules": [
                            {"alert": "ModelHighErrorRate", "expr": "vector(0.5)", "labels": labels}
                        ],
                    }
                ]
            },
        )

        def firing() -> bool:
            for a in env.cluster.prometheus_api("alerts")["alerts"]:
                lab = a["labels"]
                if lab.get("modeldeployment") == name and lab.get("namespace") == env.namespace:
                    return bool(a["state"] == "firing")
            return False

        deadline = time.monotonic() + 60
        while not firing():
            assert time.monotonic() < deadline, "the alert never fired"
            time.sleep(0.05)
        fired = time.monotonic()
        while True:
            st = (asyncio.run(kube.get("ModelDeployment", env.namespace, name)) or {})["status"]
            if not st.get("candidateVersion") and int(st.get("canaryWeight") or 0) == 0:
                break
            assert time.monotonic() - fired < 30, st
            time.sleep(0.05)
        took = time.monotonic() - fired
        print(f"alert firing -> candidate weight 0: {took:.2f}s (analysis.interval 30s)")
        assert st["history"][0]["reason"] == "AnalysisFailed"
        assert "ModelHighErrorRate firing for the candidate v2" in st["history"][0]["message"]
        assert took <= 2.0
    finally:
        with contextlib.suppress(Exception):
            env.cluster.remove_rules(rule)
        op.stop()
        env.operator.start()

"""The retraining loop end to end on the real cluster, with real traffic and real processes:
a real ``mlflow server`` (artifacts and the labelled-data bucket in versitygw), the
chart-installed operator, model server pods that write what ``/feedback`` labels, the Jobs
the operator starts, and the project's rules in the cluster's Prometheus.

- The inputs shift and the world changes; the stable's ModelFeatureDrift fires; the example
  trainer (``modeldeploy retrain``) runs as a Job on the recent labels and registers version
  2; the gate Job passes it on the held-out requests; the alias moves and the canary
  promotes it, with no request lost.
- A user's trainer registers a worse model: the gate stops it and it never gets a request;
  the drift persists, and the cooldown holds every further run.
- ``approval: manual``: a candidate that passed waits, with no rollout, until promoted.
- Without a registry: an s3:// bundle's retrained version is written under
  ``spec.retrain.output``, adopted in status once it passes, and rolled out by the canary.

Every other ModelDeployment is on ``models:/NAME@champion``; no manifest ever changes.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from e2e import loop
from e2e import stack as st
from e2e.cluster.api import Cluster
from e2e.fileserver import Bundle
from e2e.labeller import Labeller, changed_truth, example_truth
from e2e.mlflowstore import PORT, Registry

from .rollout_env import Env, assert_none_lost, make_env

pytestmark = pytest.mark.cluster

MODELS = ("loop", "rejected", "manual")
S3_MODEL = "bucket"  # on an s3:// bundle, no registry
# Rows per request: 320 labelled rows a second, so the few seconds between the shift and the
# drift alert give the trainer and the gate thousands of rows, not hundreds (on 800 rows a
# tree ensemble's directional check is a coin toss).
BATCH = 16
# Labelled traffic of the old world before the shift: about as many rows as the drift's
# first seconds give, so the window mixes both (a day's window would hold far more old rows;
# the trainer's fit on such a mix is the trainer's business, its drift reference is ours).
PRE_SHIFT_SECONDS = 20
RUN_TIMEOUT = 480  # drift, the trainer's start, collectSeconds, the wait for the last labels


@pytest.fixture(scope="module")
def env(
    cluster: Cluster, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("bundles")

    def registered(_cluster: Cluster, _ns: str) -> dict[str, Bundle]:
        bundles = {name: loop.register_first(registry, root, name) for name in MODELS}
        return {**bundles, S3_MODEL: loop.upload_first(registry, root, S3_MODEL)}

    sets = (f"networkPolicy.registryPorts={{{PORT}}}",)
    with make_env(cluster, bundles=registered, sets=sets) as e:
        loop.prepare_store(registry, e.stack)
        yield e


def alias_version(registry: Registry, name: str) -> str:
    url = f"{registry.url}/api/2.0/mlflow/registered-models/alias?name={name}&alias={loop.ALIAS}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(json.loads(resp.read())["model_version"]["version"])


def gate_tags(registry: Registry, name: str, version: str) -> dict[str, str]:
    """The ``modeldeploy.gate.*`` tags of a version (written a reconcile after the verdict)."""
    url = f"{registry.url}/api/2.0/mlflow/model-versions/get?name={name}&version={version}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        tags = json.loads(resp.read())["model_version"].get("tags", [])
    return {t["key"]: t["value"] for t in tags if t["key"].startswith("modeldeploy.gate.")}


def reasons(env: Env, name: str) -> list[str]:
    return [str(e["reason"]) for e in st.events(env.stack, name)]


def start(env: Env, registry: Registry, name: str, **kw: Any) -> tuple[str, Labeller]:
    env.cluster.apply(loop.manifest(env.stack, registry, name, env.bundles[name], **kw))
    env.healthy(name, "v1", timeout=300)
    ip = st.service_ip(env.stack, name)
    return ip, Labeller(ip, truth=None)


def test_drift_retrains_gates_and_promotes_with_no_human(env: Env, registry: Registry) -> None:
    name = "loop"
    ip, labeller = start(env, registry, name)
    # Outcomes are reported from the start, as a user's are: the window holds the old world's
    # inputs too, and the new version's drift reference must still be the new inputs only
    # (else its own ModelFeatureDrift, one of the analysis' alerts, rolls it back).
    labeller.truth = example_truth
    with env.traffic(name, rate=20, batch=BATCH, max_seconds=900, on_answer=labeller) as traffic:
        time.sleep(PRE_SHIFT_SECONDS)
        traffic.shift()  # busier, slower services: the stable's inputs drift...
        labeller.truth = changed_truth  # ...and what makes an incident has changed
        run = loop.wait_run(
            env.stack, name, "a run started by drift", lambda r: r.get("trigger"), RUN_TIMEOUT
        )
        assert run["trigger"] == "alert" and run["alert"].startswith("ModelFeatureDrift{"), run
        assert run["currentURI"] == f"models:/{name}/1"
        done = loop.wait_run(
            env.stack, name, "the run promoted", lambda r: r.get("outcome"), RUN_TIMEOUT
        )
        assert done["outcome"] == "Promoted", loop.describe(env.stack, name)
        assert done["version"] == "2" and done["modelURI"] == f"models:/{name}/2"
        assert "every check passed" in done["gateSummary"], done
        assert alias_version(registry, name) == "2"
        tags = gate_tags(registry, name, "2")  # the gate's table is on the version too
        assert tags["modeldeploy.gate.verdict"] == "passed", tags
        assert tags["modeldeploy.gate.summary"] == done["gateSummary"]
        checks = json.loads(tags["modeldeploy.gate.checks"])  # (passed None: not applicable)
        assert checks and not any(c["passed"] is False for c in checks), tags
        promoted = env.finished(name, "2", timeout=300)  # the card's version is the registry's
        assert promoted["outcome"] == "Promoted", promoted
        st.wait("answers from version 2 only", lambda: set(traffic.recent_versions(5)) == {"2"}, 60)
    assert_none_lost(traffic.tally)
    labels = labeller.snapshot()
    assert labels["outcomes"].get("200", 0) > 100, labels
    # The new version's card names its lineage.
    lineage = loop.model_card(ip)["card"]["training_data"]
    assert lineage["replaces"]["version"] == "v1" and lineage["run"] == done["id"]
    assert lineage["window"]["location"] == f"s3://{loop.BUCKET}/{name}"
    assert lineage["trainer_image"] == env.cluster.server_image
    assert lineage["rows"] > 0 and lineage["held_out_rows"] > 0
    # Its drift reference is the rows since the drift began, not the old world's before it.
    reference = lineage["reference"]
    assert "fallback" not in reference, reference
    assert datetime.fromisoformat(reference["since"]) == datetime.fromisoformat(
        done["referenceSince"]
    )
    assert 0 < reference["rows"] < lineage["rows"], lineage
    seen = reasons(env, name)
    for reason in ("RetrainStarted", "RetrainGating", "GatePassed", "RetrainPromoted"):
        assert reason in seen, seen


def test_a_worse_candidate_is_stopped_by_the_gate_and_the_cooldown_holds(
    env: Env, registry: Registry
) -> None:
    name = "rejected"
    trainer = ["python", "-c", loop.BAD_TRAINER]
    ip, labeller = start(env, registry, name, trainer=trainer)
    with env.traffic(name, rate=20, batch=BATCH, max_seconds=900, on_answer=labeller) as traffic:
        traffic.shift()  # the inputs drift; the outcomes follow the example's own world
        labeller.truth = example_truth
        done = loop.wait_run(
            env.stack, name, "the run judged", lambda r: r.get("outcome"), RUN_TIMEOUT
        )
        assert done["outcome"] == "Rejected", loop.describe(env.stack, name)
        assert "failed: " in done["gateSummary"], done
        tags = st.wait(
            "the gate's table on version 2",
            lambda: gate_tags(registry, name, "2") or None,
            60,
            detail=lambda: loop.describe(env.stack, name),
        )
        assert tags["modeldeploy.gate.verdict"] == "rejected", tags
        assert any(c["passed"] is False for c in json.loads(tags["modeldeploy.gate.checks"]))
        # The drift goes on firing: the next run is held by the cooldown (one Event).
        held = st.wait(
            "the next run held",
            lambda: loop.retrain(env.stack, name).get("held"),
            120,
            detail=lambda: loop.describe(env.stack, name),
        )
        assert str(held).startswith("cooldown until "), held
        time.sleep(10)  # a few more analysis ticks with the alert firing
        assert len(loop.runs(env.stack, name)) == 1, loop.describe(env.stack, name)
        assert reasons(env, name).count("RetrainHeld") == 1
    # The rejected version never got a request: every answer came from v1.
    assert set(traffic.tally.by_version) == {"v1"}, traffic.tally.as_dict()
    assert_none_lost(traffic.tally)
    assert alias_version(registry, name) == "1"
    status = st.status(env.stack, name)
    assert status["stableVersion"] == "v1" and not status.get("candidateVersion")
    assert "GateFailed" in reasons(env, name)


def test_manual_approval_waits_for_a_promote(env: Env, registry: Registry) -> None:
    name = "manual"
    ip, labeller = start(env, registry, name, approval="manual")
    with env.traffic(name, rate=20, batch=BATCH, max_seconds=900, on_answer=labeller) as traffic:
        traffic.shift()
        labeller.truth = changed_truth
        st.wait(
            "awaiting approval",
            lambda: loop.retrain(env.stack, name).get("phase") == "AwaitingApproval",
            RUN_TIMEOUT,
            detail=lambda: loop.describe(env.stack, name),
        )
        time.sleep(10)  # it waits: no rollout, the alias stays
        assert not st.status(env.stack, name).get("candidateVersion")
        assert alias_version(registry, name) == "1"
        env.control(name, "promote")
        promoted = env.finished(name, "2", timeout=300)
        assert promoted["outcome"] == "Promoted", promoted
    assert_none_lost(traffic.tally)
    assert alias_version(registry, name) == "2"
    seen = reasons(env, name)
    assert "RetrainAwaitingApproval" in seen and "RetrainApproved" in seen, seen


def test_without_a_registry_the_retrained_bundle_is_adopted_and_rolled_out(
    env: Env, registry: Registry
) -> None:
    name, first = S3_MODEL, env.bundles[S3_MODEL]
    ip, labeller = start(env, registry, name, output=loop.OUTPUT)
    spec_before = st.get(env.stack, name)["spec"]
    labeller.truth = example_truth
    with env.traffic(name, rate=20, batch=BATCH, max_seconds=900, on_answer=labeller) as traffic:
        time.sleep(PRE_SHIFT_SECONDS)
        traffic.shift()
        labeller.truth = changed_truth
        done = loop.wait_run(
            env.stack, name, "the run promoted", lambda r: r.get("outcome"), RUN_TIMEOUT
        )
        assert done["outcome"] == "Promoted", loop.describe(env.stack, name)
        key = f"retrained/{env.stack.namespace}/{name}/v1-r1.tar.gz"
        assert done["version"] == "v1-r1" and done["modelURI"] == f"s3://{loop.MODELS_BUCKET}/{key}"
        assert done["currentURI"] == first.uri and "every check passed" in done["gateSummary"]
        adopted = loop.retrain(env.stack, name)["adopted"]
        assert adopted["uri"] == done["modelURI"] and adopted["sha256"] == done["sha256"]
        assert adopted["over"] == {"bundleURI": first.uri, "sha256": first.sha256}
        promoted = env.finished(name, "v1-r1", timeout=300)
        assert promoted["outcome"] == "Promoted", promoted
        st.wait("answers from v1-r1 only", lambda: set(traffic.recent_versions(5)) == {"v1-r1"}, 60)
    assert_none_lost(traffic.tally)
    assert st.get(env.stack, name)["spec"] == spec_before  # the spec is never edited
    assert registry.store is not None
    head = registry.store.client().head_object(Bucket=loop.MODELS_BUCKET, Key=key)
    assert head["ContentLength"] > 0
    card = loop.model_card(ip)["card"]
    assert card["version"] == "v1-r1" and card["training_data"]["replaces"]["version"] == "v1"
    seen = reasons(env, name)
    for reason in ("RetrainStarted", "RetrainGating", "GatePassed", "RetrainPromoted"):
        assert reason in seen, seen

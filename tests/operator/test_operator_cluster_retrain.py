"""The retraining loop's Jobs on the real cluster: a real ``mlflow server`` holds the
registered model (version 1 under the alias, version 2 as a trainer would register it), the
operator runs as a subprocess (``opcluster``), and the real kubelet runs the Jobs' pods under
the restricted profile with the server image.

The ``retrain`` control starts a run: the trainer Job's init container fetches and verifies
the stable bundle from the registry, the trainer (the server image with a short script that
checks what it was handed and answers in its termination message) runs to completion, and
the operator reads that answer and starts the gate Job with both bundles. A trainer that
fails is reported (Event and status) and the next ``retrain`` is held by the cooldown.
Moving the alias against the real registry is the end-to-end test's (the gate that decides
is the server's ``modeldeploy gate --labelled-data``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from admission import dry_run, install_crd
from admission import manifest as admission_manifest
from opcluster import Env, operator_env

from e2e.cluster.api import Cluster
from e2e.mlflowstore import Registry
from e2e.stack import wait
from modeldeploy.server.bundle import bundle_sha256
from modeldeploy.server.contract import retrain as c
from modeldeploy.server.examples import build_example
from modeldeploy.server.register import register
from modeldeploy.server.sources.mlflow import MLflowSettings

pytestmark = pytest.mark.cluster

NAME = "churn"
ALIAS = "production"
TRACKING = "http://mlflow.ml.svc:5000"  # admission only: never called
JOB_TIMEOUT = 240  # a pod's start on a busy shared machine, the fetch and the script

# The trainer: checks the contract's environment and the fetched stable bundle, then answers
# with the version it "registered" (version 2, registered by the fixture).
TRAINER = """
import json, os, sys
env = os.environ
need = [{names}]
missing = [n for n in need if not env.get(n)]
card = os.path.join(env.get("{current}", "/nonexistent"), "model-card.json")
if missing or not os.path.isfile(card):
    print("missing", missing, card, file=sys.stderr)
    sys.exit(4)
with open("{log}", "w") as out:
    json.dump({{"version": "2", "modelURI": "models:/{name}/2", "sha256": "{sha}"}}, out)
"""


@pytest.fixture(scope="module")
def versions(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Version 1 under the alias (the stable), version 2 registered beside it; their digests."""
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for seed, (version, alias) in enumerate((("v1", ALIAS), ("v2", ""))):
        build_example(root / version, version, "good", seed=seed)
        got = register(root / version, MLflowSettings(registry.url), NAME, alias)
        out[got.version] = bundle_sha256(root / version)
    assert sorted(out) == ["1", "2"], out
    return out


@pytest.fixture(scope="module")
def env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with operator_env(cluster, tmp_path_factory.mktemp("operator") / "operator.log") as e:
        yield e


def manifest(env: Env, registry: Registry, name: str, script: str) -> dict[str, Any]:
    md = env.manifest(name, "v1", {"canary": {"steps": [{"setWeight": 50}]}})
    md["spec"]["model"] = {
        "name": "incident",
        "version": "v1",
        "bundleURI": f"models:/{NAME}@{ALIAS}",
        "mlflow": {"trackingURI": registry.url},
    }
    md["spec"]["retrain"] = {
        "trainer": {
            "image": env.cluster.server_image,
            "command": ["python", "-c", script],
            "activeDeadlineSeconds": 300,
        },
        "labelledData": {"uri": f"s3://labels/{name}"},
    }
    return md


def retrain_status(env: Env, name: str) -> dict[str, Any]:
    return dict(env.status(name).get("retrain") or {})


def wait_retrain(env: Env, name: str, what: str, check: Any, timeout: float = JOB_TIMEOUT) -> Any:
    def detail() -> str:
        jobs = env.kubectl("get", "jobs,pods", "-o", "wide", check=False).stdout
        return f"retrain: {json.dumps(retrain_status(env, name))}\n{jobs}"

    try:
        return wait(what, lambda: check(retrain_status(env, name)), timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{detail()}") from None


def reasons(env: Env, name: str) -> list[str]:
    return [str(e.get("reason")) for e in env.events(name)]


def test_a_retrain_control_runs_the_trainer_job_and_then_the_gate_job(
    env: Env, registry: Registry, versions: dict[str, str]
) -> None:
    name = "loop"
    names = ", ".join(
        repr(n)
        for n in (
            c.ENV_RUN,
            c.ENV_DATA,
            c.ENV_SINCE,
            c.ENV_UNTIL,
            c.ENV_CURRENT,
            c.ENV_CURRENT_VERSION,
            c.ENV_CURRENT_URI,
            c.ENV_REGISTERED_MODEL,
            c.ENV_TRACKING_URI,
            c.ENV_TRAINER_IMAGE,
        )
    )
    script = TRAINER.format(
        names=names, current=c.ENV_CURRENT, log=c.TERMINATION_LOG, name=NAME, sha=versions["2"]
    )
    env.apply(manifest(env, registry, name, script))
    wait(
        "the alias resolved",
        lambda: env.status(name).get("resolvedModel", {}).get("version") == "1" or None,
        120,
    )
    env.control(name, "retrain/1")
    training = wait_retrain(env, name, "a run", lambda s: s if s.get("current") else None, 60)
    run = training["current"]
    assert run["trigger"] == "control" and run["currentURI"] == f"models:/{NAME}/1"
    assert run["currentSHA256"] == versions["1"]
    job = env.get("job", run["trainJob"])
    assert job is not None and job["metadata"]["ownerReferences"][0]["name"] == name
    gating = wait_retrain(
        env, name, "the trainer's answer", lambda s: s if s.get("phase") == "Gating" else None
    )
    run = gating["current"]
    assert (run["version"], run["modelURI"]) == ("2", f"models:/{NAME}/2")
    assert run["sha256"] == versions["2"]
    trained = env.get("job", run["trainJob"])
    assert trained is not None and trained["status"].get("succeeded") == 1
    gate = wait("the gate Job", lambda: env.get("job", run["gateJob"]), 30)
    pod = gate["spec"]["template"]["spec"]
    fetches = [ic["command"][2] for ic in pod["initContainers"]]
    assert fetches == [f"models:/{NAME}/1", f"models:/{NAME}/2"]
    assert pod["containers"][0]["command"][:3] == ["modeldeploy", "gate", c.CANDIDATE_BUNDLE]
    assert {"RetrainStarted", "RetrainGating"} <= set(reasons(env, name))


def test_a_failing_trainer_is_reported_and_the_next_run_is_held_by_the_cooldown(
    env: Env, registry: Registry, versions: dict[str, str]
) -> None:
    name = "failing"
    env.apply(manifest(env, registry, name, "import sys; sys.exit(3)"))
    wait(
        "the alias resolved",
        lambda: env.status(name).get("resolvedModel", {}).get("version") == "1" or None,
        120,
    )
    env.control(name, "retrain/1")
    failed = wait_retrain(
        env, name, "the failure", lambda s: s if s.get("phase") == "Failed" else None
    )
    entry = failed["history"][0]
    assert entry["outcome"] == "Failed" and "exit code 3" in entry["reason"], entry
    env.control(name, "retrain/2")

    def messages() -> dict[str, str] | None:
        events = {str(e.get("reason")): str(e.get("message")) for e in env.events(name)}
        return events if "RetrainHeld" in events else None

    events = wait("the held control's Event", messages, 60)
    assert "the retrain control is held: cooldown until" in events["RetrainHeld"], events
    assert "exit code 3" in events["RetrainFailed"], events
    assert retrain_status(env, name)["runs"] == 1  # no second run


def test_retrain_specs_are_checked_at_admission(cluster: Cluster, namespace: str) -> None:
    """The CRD's rules on the real apiserver: an alias bundle only, the trainer's env values
    only, the limits' ranges; the defaults filled in."""
    install_crd(cluster)
    alias = {"bundleURI": "models:/churn@production", "mlflow": {"trackingURI": TRACKING}}
    good = {"trainer": {"image": "t:1"}, "labelledData": {"uri": "s3://labels/churn"}}
    obj = admission_manifest("retrain", namespace, alias)
    obj["spec"]["retrain"] = good
    code, err = dry_run(cluster, obj)
    assert code == 0, err
    res = cluster.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(obj)
    )
    defaulted = json.loads(res.stdout)["spec"]["retrain"]
    assert (defaulted["cooldownSeconds"], defaulted["maxPerDay"]) == (3600, 3)
    assert defaulted["approval"] == "auto" and defaulted["gate"] == {"maxRegression": 0.01}
    assert defaulted["trigger"] == {"alerts": ["ModelFeatureDrift"]}
    assert defaulted["trainer"]["activeDeadlineSeconds"] == 3600
    assert defaulted["labelledData"]["windowSeconds"] == 86400
    assert defaulted["labelledData"]["collectSeconds"] == 60
    # Without a registry: an s3:// bundle retrains into spec.retrain.output.
    s3_bundle = {"bundleURI": "s3://models/churn/v1.tar.gz", "sha256": "a" * 64}
    with_output = {**good, "output": {"uri": "s3://models/retrained"}}
    http_output = {"uri": "https://bundles.ml.svc/retrained", "credentialsSecret": "writer"}
    for output in (with_output, {**good, "output": http_output}):
        obj = admission_manifest("retrain", namespace, s3_bundle)
        obj["spec"]["retrain"] = output
        code, err = dry_run(cluster, obj)
        assert code == 0, err
    version = {"bundleURI": "models:/churn/3", "mlflow": {"trackingURI": TRACKING}}
    bad: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "retrain needs spec.model.bundleURI models:/NAME@ALIAS": (version, good),
        "or spec.retrain.output for an s3:// or http(s):// bundle": (s3_bundle, good),
        "(and only then)": (alias, with_output),
        "spec.retrain.output.uri": (s3_bundle, {**good, "output": {"uri": "ftp://x/y"}}),
        "credentialsSecret is for an http(s) output": (
            s3_bundle,
            {**good, "output": {"uri": "s3://models/r", "credentialsSecret": "writer"}},
        ),
        "spec.retrain.trainer.env[0].valueFrom": (
            alias,
            {**good, "trainer": {"image": "t", "env": [{"name": "A", "valueFrom": {}}]}},
        ),
        "MODELDEPLOY_ are what the operator hands the trainer": (
            alias,
            {**good, "trainer": {"image": "t", "env": [{"name": "MODELDEPLOY_X", "value": "1"}]}},
        ),
        "spec.retrain.maxPerDay": (alias, {**good, "maxPerDay": 0}),
        "spec.retrain.approval": (alias, {**good, "approval": "later"}),
        "spec.retrain.labelledData.uri": (alias, {**good, "labelledData": {"uri": "http://x"}}),
        "spec.retrain.trainer": (alias, {"labelledData": good["labelledData"]}),
    }
    for message, (model, retrain) in bad.items():
        obj = admission_manifest("retrain", namespace, model)
        obj["spec"]["retrain"] = retrain
        code, err = dry_run(cluster, obj)
        assert code != 0 and message in err, (message, err)

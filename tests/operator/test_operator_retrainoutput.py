"""Retraining without a registry (``spec.retrain.output``, ``retrainoutput``): the spec's
checks, the run's object and version, the trainer's answer checked against them, the
adoption in status instead of an alias move, the spec as the reconcile then runs it, the end
of an adoption once the spec names another bundle, and the Jobs' fetches and environment."""

from __future__ import annotations

import re
from typing import Any

import pytest
from retrainloop import DRIFT, RETRAIN_SCHEMA, SHA_NEW, Loop, rspec

from modeldeploy.operator import retraining as r
from modeldeploy.operator import retrainjobs as rj
from modeldeploy.operator import retrainoutput as ro
from modeldeploy.operator.builders import Owner
from modeldeploy.operator.engine import RolloutStatus, SlotRecord
from modeldeploy.operator.model import Spec, SpecError
from modeldeploy.server.contract import retrain as c
from modeldeploy.server.contract import sources as src

SHA_CUR = "a" * 64
BUNDLE = "s3://models/churn/v4.tar.gz"
OUTPUT = "s3://models/retrained"
OWNER = Owner(name="churn", namespace="ml", uid="u-1")
S3_MODEL = {
    "bundleURI": BUNDLE,
    "sha256": SHA_CUR,
    "s3": {"endpoint": "http://models.ml.svc:9000", "credentialsSecret": "model-store"},
}
STABLE = r.Stable(uri=BUNDLE, version="v4", sha256=SHA_CUR)
TARGET = ro.Target(BUNDLE, SHA_CUR, "v4", f"{OUTPUT}/ml/churn")


def body(output: str | None = OUTPUT, uri: str = BUNDLE) -> Any:
    retrain: dict[str, Any] = {
        "trainer": {"image": "trainer:1", "command": ["modeldeploy", "retrain"]},
        "labelledData": {
            "uri": "s3://labels/churn",
            "s3": {"endpoint": "http://s3.ml.svc:7070", "credentialsSecret": "label-store"},
        },
    }
    if output is not None:
        retrain["output"] = {"uri": output}
    return {
        "metadata": {"name": "churn", "namespace": "ml", "generation": 1, "uid": "u-1"},
        "spec": {
            "model": {"name": "churn", "version": "v4", **S3_MODEL, "bundleURI": uri},
            "server": {"image": "modeldeploy-server:dev"},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
            "retrain": retrain,
        },
    }


def output_loop(**spec: Any) -> Loop:
    return Loop(rspec(S3_MODEL, output={"uri": OUTPUT}, **spec), stable=STABLE, target=TARGET)


def to_gate(loop: Loop) -> None:
    loop.tick(firing=DRIFT)
    run = loop.state["current"]
    loop.trained(version=run["outputVersion"], modelURI=run["outputURI"])
    loop.tick()


@pytest.mark.parametrize(
    ("output", "uri", "why"),
    [
        (None, BUNDLE, "or spec.retrain.output for an s3:// or http(s)://"),
        (OUTPUT, "models:/churn@production", "spec.retrain.output applies to an s3://"),
        ("ftp://store/retrained", BUNDLE, "spec.retrain.output.uri must be s3://"),
        ("s3://models/a/../b", BUNDLE, "'.' or '..' segments"),
        ("https://store.ml.svc/a/../b", BUNDLE, "'.' or '..' segments"),
        ("s3://X_bad/retrained", BUNDLE, "spec.retrain.output.uri"),
    ],
)
def test_an_output_is_for_a_bundle_without_a_registry_s3_or_http(
    output: str | None, uri: str, why: str
) -> None:
    raw = body(output, uri)
    if uri.startswith(src.MODELS_SCHEME):
        raw["spec"]["model"] = {"name": "churn", "version": "4", "bundleURI": uri}
        raw["spec"]["model"]["mlflow"] = {"trackingURI": "http://mlflow.ml.svc:5000"}
    with pytest.raises(SpecError, match=re.escape(why)):
        Spec.from_body(raw)
    assert Spec.from_body(body()).retrain is not None  # an s3:// bundle with an output is fine


def test_a_run_is_handed_its_own_object_and_version() -> None:
    loop = output_loop()
    loop.tick(firing=DRIFT)
    run = loop.state["current"]
    assert run["outputURI"] == f"{OUTPUT}/ml/churn/v4-r1.tar.gz"
    assert run["outputVersion"] == "v4-r1" and run["currentVersion"] == "v4"
    assert target_of(Spec.from_body(body())) == TARGET
    job = rj.train_job(OWNER, Spec.from_body(body()), run)
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env[c.ENV_OUTPUT] == run["outputURI"] and env[c.ENV_VERSION] == "v4-r1"
    assert env[c.ENV_CURRENT_VERSION] == "v4" and env[c.ENV_CURRENT_URI] == BUNDLE
    assert c.ENV_REGISTERED_MODEL not in env and c.ENV_TRACKING_URI not in env
    # The stable is fetched as the spec says (its S3 server and credentials).
    (fetch,) = job["spec"]["template"]["spec"]["initContainers"]
    assert fetch["command"][len(src.FETCH_COMMAND)] == BUNDLE
    assert "http://models.ml.svc:9000" in fetch["command"]
    refs = {e["name"]: e.get("valueFrom") for e in fetch["env"]}
    assert refs[src.ENV_S3_ACCESS_KEY_ID]["secretKeyRef"]["name"] == "model-store"


def target_of(spec: Spec) -> ro.Target | None:
    return ro.target(spec, "ml", "churn")


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"version": "5", "modelURI": "models:/churn/5"}, "not the MODELDEPLOY_RETRAIN_VERSION"),
        ({"version": "v4-r1", "modelURI": "s3://models/elsewhere.tar.gz"}, "v4-r1 at s3://"),
    ],
)
def test_an_answer_that_is_not_the_runs_output_fails_the_run(
    answer: dict[str, str], why: str
) -> None:
    loop = output_loop()
    loop.tick(firing=DRIFT)
    loop.trained(**answer)
    loop.tick()
    assert loop.state["phase"] == "Failed" and loop.events[-1][0] == "RetrainFailed"
    assert why in loop.state["history"][0]["reason"], loop.state


def test_a_version_that_passes_is_adopted_in_status_and_no_alias_moves() -> None:
    loop = output_loop()
    to_gate(loop)
    assert loop.state["phase"] == "Gating"
    loop.gated()
    decision = loop.tick(firing=DRIFT)  # the drift still fires
    assert decision.move_alias is None and decision.jobs == ()
    adopted = loop.state[ro.KEY]
    assert adopted == {
        "uri": f"{OUTPUT}/ml/churn/v4-r1.tar.gz",
        "sha256": SHA_NEW,
        "version": "v4-r1",
        "run": "1",
        "adoptedAt": adopted["adoptedAt"],
        "over": {"bundleURI": BUNDLE, "sha256": SHA_CUR},
    }
    entry = loop.state["history"][0]
    assert loop.state["phase"] == "Idle" and entry["outcome"] == "Promoted"
    reason, message = next(e for e in loop.events if e[0] == "RetrainPromoted")
    assert f"version v4-r1 ({adopted['uri']}) adopted over {BUNDLE}" in message
    assert "(gate: accuracy 0.91 vs 0.84)" in message
    # The drift still fires: the next run waits for the cooldown, as after an alias move.
    assert loop.state["held"].startswith("cooldown until ")


def test_manual_approval_adopts_only_on_the_promote_control() -> None:
    loop = output_loop(approval="manual")
    to_gate(loop)
    loop.gated()
    loop.tick()
    assert loop.state["phase"] == "AwaitingApproval" and ro.KEY not in loop.state
    loop.tick()
    assert ro.KEY not in loop.state
    loop.tick(control="promote")
    assert loop.state[ro.KEY]["version"] == "v4-r1" and loop.state["phase"] == "Idle"


def test_a_rejected_version_is_never_adopted() -> None:
    loop = output_loop()
    to_gate(loop)
    loop.gated(passed=False, summary="failed: accuracy 0.70 < 0.84 - 0.01")
    loop.tick()
    assert loop.state["phase"] == "Rejected" and ro.KEY not in loop.state


def adopted_status(**over: str) -> dict[str, Any]:
    record = {
        "uri": f"{OUTPUT}/ml/churn/v4-r1.tar.gz",
        "sha256": SHA_NEW,
        "version": "v4-r1",
        "run": "1",
        "adoptedAt": "2026-01-01T00:00:00Z",
        "over": {"bundleURI": BUNDLE, "sha256": SHA_CUR, **over},
    }
    return {"retrain": {"phase": "Idle", ro.KEY: record}}


def test_the_reconcile_runs_the_adopted_bundle_while_the_spec_names_the_one_it_replaced() -> None:
    spec = Spec.from_body(body())
    runs = ro.apply(spec, adopted_status(), "ml", "churn")
    model = runs.template.model
    assert (model.bundle_uri, model.sha256, model.version) == (
        f"{OUTPUT}/ml/churn/v4-r1.tar.gz",
        SHA_NEW,
        "v4-r1",
    )
    assert model.s3 is not None and model.s3.credentials_secret == "label-store"  # as written
    assert runs.template.revision != spec.template.revision  # a new revision: a rollout
    assert runs.retrain == spec.retrain and runs.strategy == spec.strategy
    # A spec that names another bundle (or another pin of it) runs that one.
    assert ro.apply(spec, adopted_status(sha256="b" * 64), "ml", "churn") == spec
    assert ro.apply(spec, {}, "ml", "churn") == spec
    assert ro.apply(spec, adopted_status(), "ml", "other") == spec  # another's location


def test_an_adoption_ends_once_the_spec_names_another_bundle() -> None:
    loop = output_loop()
    loop.state = adopted_status()["retrain"]
    loop.tick()
    assert ro.KEY in loop.state and loop.events == []
    moved = ro.Target("s3://models/churn/v5.tar.gz", "e" * 64, "v5", TARGET.location)
    loop.tick(target=moved)
    assert ro.KEY not in loop.state
    assert loop.events == [
        (
            "RetrainAdoptionEnded",
            "the spec now names s3://models/churn/v5.tar.gz: version v4-r1 no longer runs in "
            "its place",
        )
    ]


def test_the_gate_fetches_the_candidate_with_the_stores_s3_settings() -> None:
    loop = output_loop()
    to_gate(loop)
    job = rj.gate_job(OWNER, Spec.from_body(body()), loop.state["current"])
    current, candidate = job["spec"]["template"]["spec"]["initContainers"]
    assert candidate["command"][len(src.FETCH_COMMAND)] == f"{OUTPUT}/ml/churn/v4-r1.tar.gz"
    assert "http://s3.ml.svc:7070" in candidate["command"]
    refs = {e["name"]: e.get("valueFrom") for e in candidate["env"]}
    assert refs[src.ENV_S3_ACCESS_KEY_ID]["secretKeyRef"]["name"] == "label-store"
    assert "http://models.ml.svc:9000" in current["command"]


def test_the_stable_without_a_registry_is_the_pinned_bundle_its_slot_runs() -> None:
    spec = ro.apply(Spec.from_body(body()), adopted_status(), "ml", "churn")
    record = SlotRecord(template=spec.template, revision=spec.template.revision)
    status = RolloutStatus(stable_slot="blue", slots={"blue": record})
    stable = rj.stable_of(status, registry=False)
    assert stable == r.Stable(f"{OUTPUT}/ml/churn/v4-r1.tar.gz", "v4-r1", SHA_NEW)
    assert rj.stable_of(status) is None  # not a registry version
    assert RETRAIN_SCHEMA["properties"][ro.KEY]["properties"]["over"]


HTTP_OUTPUT = "https://bundles.ml.svc/retrained"


def http_body(secret: str = "bundle-writer") -> Any:
    raw = body(HTTP_OUTPUT)
    raw["spec"]["retrain"]["output"]["credentialsSecret"] = secret
    return raw


def test_an_http_output_is_put_with_the_token_of_its_secret_and_read_without() -> None:
    spec = Spec.from_body(http_body())
    assert spec.retrain is not None and spec.retrain.output_secret == "bundle-writer"
    target = ro.Target(BUNDLE, SHA_CUR, "v4", HTTP_OUTPUT + "/ml/churn")
    loop = Loop(spec.retrain, stable=STABLE, target=target)
    to_gate(loop)
    run = loop.state["current"]
    assert run["modelURI"] == f"{HTTP_OUTPUT}/ml/churn/v4-r1.tar.gz"
    job = rj.train_job(OWNER, spec, run)
    (trainer,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in trainer["env"]}
    assert env[c.ENV_OUTPUT] == run["modelURI"]
    assert env[c.ENV_OUTPUT_TOKEN] == {
        "secretKeyRef": {"name": "bundle-writer", "key": c.OUTPUT_TOKEN_KEY}
    }
    gate = rj.gate_job(OWNER, spec, run)
    _, candidate = gate["spec"]["template"]["spec"]["initContainers"]
    assert candidate["command"] == [
        *src.FETCH_COMMAND,
        run["modelURI"],
        c.CANDIDATE_BUNDLE,
        src.FLAG_FETCH_SHA256,
        SHA_NEW,
    ]  # a plain GET: no S3 settings, no credentials
    assert "env" not in candidate
    loop.gated()
    loop.tick()
    runs = ro.apply(spec, {"retrain": loop.state}, "ml", "churn")
    assert runs.template.model.bundle_uri == run["modelURI"] and runs.template.model.s3 is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (body(OUTPUT), "credentialsSecret is for an http(s) output"),
        (http_body("Not_A_Name"), "is not a Secret name"),
    ],
)
def test_an_outputs_secret_is_for_http_and_a_secret_name(raw: Any, why: str) -> None:
    if "credentialsSecret" not in raw["spec"]["retrain"]["output"]:
        raw["spec"]["retrain"]["output"]["credentialsSecret"] = "label-store"
    with pytest.raises(SpecError, match=re.escape(why)):
        Spec.from_body(raw)

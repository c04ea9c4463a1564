"""spec.model with a models:/ bundle: parsing and validation (the parser and the CRD's rules
agree), and the init container a concrete version gets (flags the real `modeldeploy fetch`
accepts, the credentials only as optional Secret references)."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from opworld import SHA_A, SHA_B, STATUS_SCHEMA, body, healthy, pruned

from modeldeploy.operator.builders import Owner, deployment, fetch_args
from modeldeploy.operator.crdgen import crd
from modeldeploy.operator.model import ModelRef, SlotDeployment, Spec, SpecError, Template
from modeldeploy.operator.resolution import concrete, decide
from modeldeploy.operator.resolving import with_resolution
from modeldeploy.server.contract import sources as src
from modeldeploy.server.contract.registry import Resolved
from modeldeploy.server.fetch import register

OWNER = Owner(name="iris", namespace="ml", uid="1234")
MLFLOW = {"trackingURI": "http://mlflow.ml.svc:5000", "credentialsSecret": "registry-creds"}


def model(uri: str = "models:/iris@champion", **extra: Any) -> dict[str, Any]:
    return {"name": "iris", "version": "1", "bundleURI": uri, **extra}


def spec_of(raw: dict[str, Any]) -> Spec:
    return Spec.from_body({**body(), "spec": {**body()["spec"], "model": raw}})


def test_the_mlflow_block_round_trips_and_sha256_may_be_left_out() -> None:
    ref = ModelRef.from_json(model(mlflow=MLFLOW))
    assert ref.mlflow is not None and ref.mlflow.tracking_uri == MLFLOW["trackingURI"]
    assert ref.sha256 == ""
    assert ModelRef.from_json(model("models:/iris/3", mlflow=MLFLOW, sha256=SHA_A)).sha256 == SHA_A


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (model(), "spec.model.mlflow .*required with a models:/ URI"),
        (
            model("https://x.test/b.tar.gz", mlflow=MLFLOW, sha256=SHA_A),
            "mlflow applies only to a models:/ bundleURI",
        ),
        (model("https://x.test/b.tar.gz"), "spec.model.sha256 is required"),
        (model("s3://models/iris.tar.gz"), "spec.model.sha256 is required"),
        (model("models:/iris/0", mlflow=MLFLOW), "a version number from 1"),
        (model("models:/iris@v2", mlflow=MLFLOW), "not look like a version"),
        (model("models:/ir/is/1", mlflow=MLFLOW), "models:/NAME/VERSION"),
        (model(mlflow={"trackingURI": "mlflow:5000"}), "trackingURI must be http"),
        (model(mlflow={"trackingURI": "http://u:pw@mlflow.test"}), "no user info"),
        (model(mlflow={**MLFLOW, "credentialsSecret": "Bad_Name"}), "not a Secret name"),
    ],
)
def test_bad_models_specs_are_refused_by_the_parser(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        ModelRef.from_json(raw)
    assert "pw" not in str(caught.value)


def model_rules() -> tuple[dict[str, Any], list[dict[str, str]]]:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    m = schema["properties"]["spec"]["properties"]["model"]
    return m, m["x-kubernetes-validations"]


def test_the_crd_ties_the_mlflow_block_and_sha256_to_a_models_uri() -> None:
    m, rules = model_rules()
    assert "sha256" not in m["required"] and "bundleURI" in m["required"]
    assert m["properties"]["mlflow"]["required"] == ["trackingURI"]
    assert re.match(m["properties"]["bundleURI"]["pattern"], "models:/iris@champion")
    by_rule = {r["rule"]: r["message"] for r in rules}
    assert "has(self.mlflow) == self.bundleURI.startsWith('models:/')" in by_rule
    assert "has(self.sha256) || self.bundleURI.startsWith('models:/')" in by_rule


@pytest.mark.parametrize(
    "uri",
    [
        "models:/iris/1",
        "models:/iris/012",
        "models:/iris.v2_x-y@champion",
        "models:/iris@_staging-1",
        "models:/iris/0",
        "models:/iris@v1",
        "models:/iris@1st",
        "models:/ir/is/1",
        "models:/-iris/1",
        "models:/iris",
    ],
)
def test_the_crd_models_pattern_agrees_with_the_parser(uri: str) -> None:
    """The CEL rule is a regular expression (RE2, which these patterns also are in Python)
    plus a refusal of aliases like v1; it must accept exactly what the parser accepts."""
    try:
        src.split_models_uri(uri)
        parser_ok = True
    except ValueError:
        parser_ok = False
    cel_ok = bool(re.search(src.MODELS_URI_PATTERN, uri)) and not re.search("@[vV][0-9]+$", uri)
    assert cel_ok == parser_ok


def fetch_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeldeploy")
    register(parser.add_subparsers(dest="command"))
    return parser


def concrete_slot(raw: dict[str, Any]) -> tuple[Spec, SlotDeployment]:
    sp = concrete(spec_of(raw), "models:/iris/7", SHA_A)
    template = Template(model=sp.template.model, image="modeldeploy-server:dev")
    dep = SlotDeployment("blue", template, template.revision, 1, "stable")
    return sp, dep


def test_the_init_container_fetches_the_concrete_version_pinned() -> None:
    sp, dep = concrete_slot(model(mlflow=MLFLOW))
    args = fetch_args(dep)
    assert tuple(args[:2]) == src.FETCH_COMMAND
    parsed = fetch_parser().parse_args(args[1:])
    assert (parsed.uri, parsed.sha256) == ("models:/iris/7", SHA_A)
    assert parsed.tracking_uri == MLFLOW["trackingURI"]
    init = deployment(OWNER, sp, dep)["spec"]["template"]["spec"]["initContainers"][0]
    assert init["env"] == [
        {
            "name": env,
            "valueFrom": {"secretKeyRef": {"name": "registry-creds", "key": env, "optional": True}},
        }
        for env in (src.ENV_MLFLOW_USERNAME, src.ENV_MLFLOW_PASSWORD, src.ENV_MLFLOW_TOKEN)
    ]
    assert "registry-creds" not in json.dumps(init["command"])


def test_without_a_credentials_secret_the_init_container_has_no_env() -> None:
    sp, dep = concrete_slot(model(mlflow={"trackingURI": "https://mlflow.test"}))
    init = deployment(OWNER, sp, dep)["spec"]["template"]["spec"]["initContainers"][0]
    assert "env" not in init
    assert fetch_parser().parse_args(fetch_args(dep)[1:]).tracking_uri == "https://mlflow.test"


def test_the_slot_keeps_the_concrete_version_and_the_record_survives_pruning() -> None:
    """The engine renders a slot's pods from the template recorded in status: an mlflow block
    the apiserver pruned there would give the init container no tracking server."""
    found = Resolved("iris", "7", "champion", "mlflow-artifacts:/1/m/artifacts", SHA_B)
    decision = decide(spec_of(model(mlflow=MLFLOW)), None, found, datetime(2026, 12, 1, tzinfo=UTC))
    assert decision.spec is not None
    world, status = healthy(decision.spec)  # every status write goes through the pruning
    slot_model = status.slots[status.stable_slot].template.model
    assert (slot_model.bundle_uri, slot_model.sha256) == ("models:/iris/7", SHA_B)
    assert slot_model.mlflow == ModelRef.from_json(model(mlflow=MLFLOW)).mlflow
    written = with_resolution(status.to_json(), decision)
    assert pruned(written, STATUS_SCHEMA)["resolvedModel"] == decision.record

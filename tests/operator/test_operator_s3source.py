"""spec.model with an s3:// bundle: parsing, validation, and the init container it gets
(flags the real `modeldeploy fetch` accepts, credentials only as Secret references)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from opworld import SHA_A, body, healthy

from modeldeploy.operator.builders import Owner, deployment, fetch_args
from modeldeploy.operator.model import ModelRef, SlotDeployment, Spec, SpecError, Template
from modeldeploy.server.contract import sources as src
from modeldeploy.server.fetch import register
from modeldeploy.server.sources.s3client import s3_flags

OWNER = Owner(name="iris", namespace="ml", uid="1234")
S3 = {
    "endpoint": "http://s3.storage.svc:7070",
    "region": "eu-west-1",
    "pathStyle": True,
    "credentialsSecret": "model-store",
}


def model(uri: str = "s3://models/iris/1.tar.gz", s3: dict[str, Any] | None = None) -> Any:
    raw: dict[str, Any] = {"name": "iris", "version": "1", "bundleURI": uri, "sha256": SHA_A}
    if s3 is not None:
        raw["s3"] = s3
    return raw


def slot(raw: dict[str, Any]) -> SlotDeployment:
    template = Template(model=ModelRef.from_json(raw), image="modeldeploy-server:dev")
    return SlotDeployment(
        slot="blue",
        template=template,
        revision=template.revision,
        replicas=1,
        serve_role="stable",
    )


def fetch_container(raw: dict[str, Any]) -> dict[str, Any]:
    spec = Spec.from_body({**body(), "spec": {**body()["spec"], "model": raw}})
    dep = deployment(OWNER, spec, slot(raw))
    init: dict[str, Any] = dep["spec"]["template"]["spec"]["initContainers"][0]
    return init


def test_the_s3_block_round_trips_and_an_http_model_is_unchanged() -> None:
    ref = ModelRef.from_json(model(s3=S3))
    assert ref.s3 is not None and ref.s3.path_style is True
    assert ref.to_json() == model(s3=S3)
    plain = model("https://example.test/b.tar.gz")
    assert ModelRef.from_json(plain).to_json() == plain, "no new key: revisions stay the same"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (model("https://example.test/b.tar.gz", S3), "s3 applies only to an s3:// bundleURI"),
        (model("s3://My_Bucket/b.tar.gz"), "lowercase letters, digits, dots and hyphens"),
        (model("s3://ab/b.tar.gz"), "3 to 63 characters"),
        (model("s3://10.0.0.1/b.tar.gz"), "IP address"),
        (model("s3://models"), "names no object"),
        (model("s3://models/"), "names no object"),
        (model(s3={"endpoint": "s3.storage.svc:7070"}), "must be http"),
        (model(s3={"endpoint": "http://user:pw@s3.test"}), "must be http"),
        (model(s3={"region": "EU West"}), "region"),
        (model(s3={"credentialsSecret": "Not_A_Name"}), "not a Secret name"),
    ],
)
def test_bad_s3_models_are_refused_by_the_parser(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ModelRef.from_json(raw)


def fetch_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeldeploy")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_the_init_container_passes_settings_as_flags_the_fetch_command_accepts() -> None:
    args = fetch_args(slot(model(s3=S3)))
    assert tuple(args[:2]) == src.FETCH_COMMAND
    parsed = fetch_parser().parse_args(args[1:])
    assert (parsed.uri, parsed.sha256) == ("s3://models/iris/1.tar.gz", SHA_A)
    assert s3_flags(parsed) == (
        S3["endpoint"],
        "eu-west-1",
        True,
    )
    virtual = fetch_parser().parse_args(fetch_args(slot(model(s3={"pathStyle": False})))[1:])
    assert s3_flags(virtual) == ("", "", False)
    http = fetch_parser().parse_args(fetch_args(slot(model("https://x.test/b.tar.gz")))[1:])
    assert http.sha256 == SHA_A and s3_flags(http) == ("", "", None)


def test_credentials_are_only_secret_references() -> None:
    init = fetch_container(model(s3=S3))
    assert init["env"] == [
        {
            "name": src.ENV_S3_ACCESS_KEY_ID,
            "valueFrom": {"secretKeyRef": {"name": "model-store", "key": "AWS_ACCESS_KEY_ID"}},
        },
        {
            "name": src.ENV_S3_SECRET_ACCESS_KEY,
            "valueFrom": {"secretKeyRef": {"name": "model-store", "key": "AWS_SECRET_ACCESS_KEY"}},
        },
        {
            "name": src.ENV_S3_SESSION_TOKEN,
            "valueFrom": {
                "secretKeyRef": {
                    "name": "model-store",
                    "key": "AWS_SESSION_TOKEN",
                    "optional": True,
                }
            },
        },
    ]
    assert all("value" not in e for e in init["env"])
    assert "model-store" not in json.dumps(init["command"])
    no_secret = fetch_container(model(s3={"endpoint": "http://s3.test:7070"}))
    assert "env" not in no_secret
    assert "env" not in fetch_container(model("https://x.test/b.tar.gz"))


def test_changing_the_s3_block_is_a_new_revision() -> None:
    a = slot(model(s3=S3)).template.revision
    b = slot(model(s3={**S3, "region": "eu-west-2"})).template.revision
    assert a != b


def test_the_s3_block_survives_the_status_and_the_slot_keeps_it() -> None:
    """The engine renders a slot's pods from the template recorded in status: an s3 block the
    apiserver pruned there would give the pods no endpoint and no credentials."""
    raw = model(s3=S3)
    sp = Spec.from_body({**body(), "spec": {**body()["spec"], "model": raw}})
    world, status = healthy(sp)  # every status write goes through the CRD's pruning
    slot_template = status.slots[status.stable_slot].template
    assert slot_template.model.s3 == ModelRef.from_json(raw).s3

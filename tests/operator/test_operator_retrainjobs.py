"""The retraining Jobs' specs (``retrainjobs``), ``spec.retrain``'s parser and schema, the
model servers' labelled-data settings, and the Jobs read back from their watch bodies."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.operator import defaults as d
from modeldeploy.operator import retrainjobs as rj
from modeldeploy.operator.builders import Owner, deployment
from modeldeploy.operator.engine import RolloutStatus, SlotRecord
from modeldeploy.operator.model import SlotDeployment, Spec, SpecError, Template
from modeldeploy.operator.schema import crd
from modeldeploy.operator.schema.retrain import RETRAIN_RULES
from modeldeploy.server import contract
from modeldeploy.server.contract import retrain as c
from modeldeploy.server.contract import sources as src

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner(name="churn", namespace="ml", uid="u-1")
SHA_CUR, SHA_NEW = "a" * 64, "d" * 64
TRACKING = "http://mlflow.ml.svc:5000"


def _podsecurity() -> Any:
    """The chart tests' restricted-profile checker (the apiserver's PodSecurity rules)."""
    spec = importlib.util.spec_from_file_location(
        "podsecurity", ROOT / "tests/chart/podsecurity.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def body(retrain: dict[str, Any] | None = None, uri: str = "models:/churn@production") -> Any:
    return {
        "metadata": {"name": "churn", "namespace": "ml", "generation": 1, "uid": "u-1"},
        "spec": {
            "model": {
                "name": "churn",
                "version": "4",
                "bundleURI": uri,
                "mlflow": {"trackingURI": TRACKING, "credentialsSecret": "mlflow-creds"},
            },
            "server": {"image": "modeldeploy-server:dev"},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
            "retrain": retrain
            if retrain is not None
            else {
                "trainer": {
                    "image": "trainer:1",
                    "command": ["modeldeploy", "retrain"],
                    "env": [{"name": "EPOCHS", "value": "3"}],
                    "activeDeadlineSeconds": 900,
                },
                "labelledData": {
                    "uri": "s3://labels/churn",
                    "s3": {
                        "endpoint": "http://s3.ml.svc:7070",
                        "pathStyle": True,
                        "credentialsSecret": "label-store",
                    },
                },
                "gate": {"maxRegression": 0.02},
            },
        },
    }


def concrete(sp: Spec) -> Spec:
    """The spec as the reconcile hands it on: the alias resolved to version 4 and its pin."""
    model = sp.template.model
    resolved = type(model)(model.name, "4", "models:/churn/4", SHA_CUR, None, model.mlflow)
    return type(sp)(**{**sp.__dict__, "template": Template(resolved, sp.template.image)})


RUN = {
    "id": "7",
    "since": "2026-01-01T00:00:00Z",
    "until": "2026-01-02T00:00:00Z",
    "trainJob": "churn-train-7",
    "gateJob": "churn-gate-7",
    "currentURI": "models:/churn/4",
    "currentSHA256": SHA_CUR,
    "version": "5",
    "modelURI": "models:/churn/5",
    "sha256": SHA_NEW,
}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("build", [rj.train_job, rj.gate_job])
def test_jobs_are_owned_restricted_and_never_retry_by_themselves(build: Any) -> None:
    job = build(OWNER, concrete(Spec.from_body(body())), RUN)
    meta, spec = job["metadata"], job["spec"]
    assert meta["ownerReferences"][0]["uid"] == "u-1" and meta["namespace"] == "ml"
    assert meta["labels"][d.LABEL_NAME] == "churn" and meta["labels"][d.LABEL_RETRAIN_RUN] == "7"
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 900
    assert "ttlSecondsAfterFinished" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert _podsecurity().restricted_violations(pod) == []
    main = pod["containers"][0]
    assert main["terminationMessagePath"] == c.TERMINATION_LOG
    assert main["terminationMessagePolicy"] == "File"  # the answer only, never the logs


def test_no_job_holds_a_secret_literal() -> None:
    for build in (rj.train_job, rj.gate_job):
        pod = build(OWNER, concrete(Spec.from_body(body())), RUN)["spec"]["template"]["spec"]
        for container in [*pod["initContainers"], *pod["containers"]]:
            for var in container.get("env", []):
                secret_like = var["name"] in {
                    *src.MLFLOW_CREDENTIAL_ENV,
                    *(e for e, _, _ in src.S3_CREDENTIAL_ENV),
                }
                if secret_like:
                    assert set(var) == {"name", "valueFrom"}, var
                    assert var["valueFrom"]["secretKeyRef"]["name"] in {
                        "mlflow-creds",
                        "label-store",
                    }


def test_the_trainer_gets_the_contracts_environment_and_the_stable_bundle() -> None:
    job = rj.train_job(OWNER, concrete(Spec.from_body(body())), RUN)
    pod = job["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    assert fetch["command"] == [
        *src.FETCH_COMMAND,
        "models:/churn/4",
        c.CURRENT_BUNDLE,
        src.FLAG_FETCH_SHA256,
        SHA_CUR,
        src.FLAG_MLFLOW_TRACKING_URI,
        TRACKING,
    ]
    (trainer,) = pod["containers"]
    assert trainer["image"] == "trainer:1" and trainer["command"] == ["modeldeploy", "retrain"]
    env = env_of(trainer)
    assert env["EPOCHS"] == "3"
    assert env[c.ENV_RUN] == "7" and env[c.ENV_DATA] == "s3://labels/churn"
    assert env[c.ENV_SINCE] == "2026-01-01T00:00:00Z" and env[c.ENV_UNTIL] == RUN["until"]
    assert env[c.ENV_CURRENT] == c.CURRENT_BUNDLE and env[c.ENV_CURRENT_VERSION] == "4"
    assert env[c.ENV_CURRENT_URI] == "models:/churn/4" and env[c.ENV_REGISTERED_MODEL] == "churn"
    assert env[c.ENV_CURRENT_SHA256] == SHA_CUR  # the trainer unpickles only what was pinned
    # where the store is, so a trainer needs no flags for it
    assert env[c.ENV_S3_ENDPOINT] == "http://s3.ml.svc:7070" and env[c.ENV_S3_PATH_STYLE] == "true"
    assert c.ENV_S3_REGION not in env
    assert env[c.ENV_TRACKING_URI] == TRACKING and env[c.ENV_TRAINER_IMAGE] == "trainer:1"
    assert env[src.ENV_S3_ACCESS_KEY_ID]["secretKeyRef"] == {
        "name": "label-store",
        "key": src.SECRET_ACCESS_KEY_ID,
    }
    assert env[src.ENV_MLFLOW_TOKEN]["secretKeyRef"]["name"] == "mlflow-creds"
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in trainer["volumeMounts"]}
    assert mounts == {c.BUNDLES_DIR: True, "/tmp": False}
    # A run started by an alert says when the drift began, for the new drift reference.
    assert c.ENV_REFERENCE_SINCE not in env
    since = {**RUN, "referenceSince": "2026-01-01T23:59:00Z"}
    drifted = rj.train_job(OWNER, concrete(Spec.from_body(body())), since)
    got = env_of(drifted["spec"]["template"]["spec"]["containers"][0])
    assert got[c.ENV_REFERENCE_SINCE] == "2026-01-01T23:59:00Z"


def test_the_gate_compares_both_pinned_bundles_on_the_runs_window() -> None:
    job = rj.gate_job(OWNER, concrete(Spec.from_body(body())), RUN)
    pod = job["spec"]["template"]["spec"]
    current, candidate = pod["initContainers"]
    assert current["command"][2:5] == ["models:/churn/4", c.CURRENT_BUNDLE, src.FLAG_FETCH_SHA256]
    assert candidate["command"][2:6] == [
        "models:/churn/5",
        c.CANDIDATE_BUNDLE,
        src.FLAG_FETCH_SHA256,
        SHA_NEW,
    ]
    (gate,) = pod["containers"]
    assert gate["image"] == "modeldeploy-server:dev"
    cmd = gate["command"]
    assert cmd[:3] == ["modeldeploy", "gate", c.CANDIDATE_BUNDLE]

    def flag(name: str) -> str:
        return str(cmd[cmd.index(name) + 1])

    assert flag(rj.FLAG_GATE_CURRENT) == c.CURRENT_BUNDLE
    assert flag(c.FLAG_GATE_CANDIDATE_SHA256) == SHA_NEW
    assert flag(c.FLAG_GATE_CURRENT_SHA256) == SHA_CUR
    assert flag(c.FLAG_GATE_LABELLED_DATA) == "s3://labels/churn"
    assert flag(src.FLAG_S3_ENDPOINT) == "http://s3.ml.svc:7070"
    assert src.FLAG_S3_PATH_STYLE in cmd
    assert flag(c.FLAG_GATE_SINCE) == RUN["since"] and flag(c.FLAG_GATE_UNTIL) == RUN["until"]
    assert flag(c.FLAG_GATE_MAX_REGRESSION) == "0.02"
    assert flag(c.FLAG_GATE_RESULT_FILE) == c.TERMINATION_LOG


def test_model_servers_get_the_labelled_data_store_only_with_retrain() -> None:
    sp = concrete(Spec.from_body(body()))
    dep = SlotDeployment("blue", sp.template, "stable", 2, sp.template.revision)
    server = deployment(OWNER, sp, dep)["spec"]["template"]["spec"]["containers"][0]
    cmd = server["command"]
    assert cmd[cmd.index(c.FLAG_LABELLED_DATA) + 1] == "s3://labels/churn"
    env = env_of(server)
    assert env[c.ENV_POD_NAME] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env[src.ENV_S3_SECRET_ACCESS_KEY]["secretKeyRef"]["name"] == "label-store"

    raw = body()
    del raw["spec"]["retrain"]
    plain = concrete(Spec.from_body(raw))
    dep = SlotDeployment("blue", plain.template, "stable", 2, plain.template.revision)
    server = deployment(OWNER, plain, dep)["spec"]["template"]["spec"]["containers"][0]
    assert c.FLAG_LABELLED_DATA not in server["command"]
    assert [e["name"] for e in server["env"]] == [POD_IP]  # no store, no S3 credentials


POD_IP = contract.ENV_POD_IP


def test_the_parser_applies_the_schemas_defaults() -> None:
    minimal = {"trainer": {"image": "t:1"}, "labelledData": {"uri": "s3://labels/x"}}
    rs = Spec.from_body(body(minimal)).retrain
    assert rs is not None
    assert rs.alerts == d.RETRAIN_ALERTS == (d.ALERT_DRIFT,)
    assert (rs.cooldown_seconds, rs.max_per_day, rs.approval) == (3600, 3, "auto")
    assert (rs.trainer.deadline_seconds, rs.labelled_data.window_seconds) == (3600, 86400)
    assert rs.max_regression == 0.01 and rs.interval_seconds is None
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = schema["properties"]["spec"]["properties"]["retrain"]["properties"]
    assert props["cooldownSeconds"]["default"] == rs.cooldown_seconds
    assert props["maxPerDay"]["default"] == rs.max_per_day
    assert props["trainer"]["properties"]["activeDeadlineSeconds"]["default"] == 3600
    assert props["trigger"]["properties"]["alerts"]["default"] == list(rs.alerts)
    assert props["gate"]["properties"]["maxRegression"]["default"] == rs.max_regression


@pytest.mark.parametrize(
    ("retrain", "uri", "why"),
    [
        (None, "models:/churn/4", "models:/NAME@ALIAS"),
        ({"trainer": {"image": "t"}, "labelledData": {"uri": "s3://x/"}}, None, "labelledData"),
        ({"trainer": {"image": "t"}}, None, "labelledData.uri is required"),
        (
            {
                "trainer": {"image": "t", "env": [{"name": "A", "valueFrom": {}}]},
                "labelledData": {"uri": "s3://labels/x"},
            },
            None,
            "name, value",
        ),
    ],
)
def test_bad_retrain_specs_are_refused(retrain: Any, uri: str | None, why: str) -> None:
    raw = body(retrain, uri or "models:/churn@production")
    with pytest.raises(SpecError, match=re.escape(why)):
        Spec.from_body(raw)


def test_the_cel_rule_admits_only_an_alias_uri() -> None:
    ((rule, _),) = RETRAIN_RULES
    pattern = re.search(r"matches\('([^']+)'\)", rule)
    assert pattern is not None
    assert re.match(pattern.group(1), "models:/churn@production")
    for uri in ("models:/churn/4", "s3://b/k.tar.gz", "models:/a/b@c"):
        assert not re.match(pattern.group(1), uri)


def test_jobs_and_their_pods_are_read_back_with_the_termination_message() -> None:
    jobs = [
        rj.job_summary({"metadata": {"name": "churn-train-7"}, "status": {"active": 1}}),
        rj.job_summary(
            {
                "metadata": {"name": "churn-gate-7"},
                "status": {
                    "conditions": [
                        {"type": "FailureTarget", "status": "True"},
                        {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"},
                    ]
                },
            }
        ),
    ]
    pods = [
        rj.pod_summary(
            {
                "metadata": {"labels": {"job-name": "churn-gate-7"}},
                "status": {
                    "containerStatuses": [
                        {
                            "name": "gate",
                            "state": {"terminated": {"exitCode": 1, "message": "x" * 9000}},
                        }
                    ]
                },
            }
        )
    ]
    states = rj.job_states(jobs, pods)
    assert states["churn-train-7"].state == "running" and states["churn-train-7"].exit_code is None
    gate = states["churn-gate-7"]
    assert (gate.state, gate.reason, gate.exit_code) == ("failed", "DeadlineExceeded", 1)
    assert len(gate.message) == c.TERMINATION_MESSAGE_MAX


def test_the_stable_a_run_starts_from_is_the_concrete_registry_version() -> None:
    sp = concrete(Spec.from_body(body()))
    record = SlotRecord(template=sp.template, revision=sp.template.revision)
    status = RolloutStatus(stable_slot="blue", slots={"blue": record})
    stable = rj.stable_of(status)
    assert stable is not None and (stable.uri, stable.version) == ("models:/churn/4", "4")
    assert stable.sha256 == SHA_CUR
    assert rj.stable_of(RolloutStatus()) is None

"""The retraining Jobs, as pure builders, and how the reconcile reads them back.

Both Jobs are owned by the ModelDeployment (garbage collection deletes them with it), run
under the restricted profile every pod the operator makes runs under, never retry by
themselves (``backoffLimit: 0``: retries are the operator's, within the cooldown and the
daily limit) and have no TTL (the operator deletes the Jobs of old runs and keeps the last
few, with their logs). Credentials reach the pods only as ``secretKeyRef``s to the Secrets
the spec names: no secret is ever a literal in a Job.

The trainer: the user's image and command, the stable bundle fetched and verified into
``CURRENT_BUNDLE`` by a ``modeldeploy fetch`` init container, and the run's settings in the
contract's ``MODELDEPLOY_RETRAIN_*`` variables. The gate: the ModelDeployment's server
image running ``modeldeploy gate`` on the candidate and the stable (each fetched by an init
container, pinned by its digest) over the same labelled-data window. Both answer in their
termination message (``/dev/termination-log``), which the reconcile reads from the pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator import retrainoutput
from modeldeploy.operator.builders import (
    fetch_command,
    mlflow_env,
    restricted_container_security,
    restricted_pod_security,
    s3_env,
    s3_flags,
)
from modeldeploy.operator.engine import RolloutStatus
from modeldeploy.operator.model import Json, ModelRef, Spec
from modeldeploy.operator.modelsource import S3Source
from modeldeploy.operator.owned import Owner, metadata
from modeldeploy.operator.retraining import JobKind, JobState, Stable
from modeldeploy.operator.retrainspec import RetrainSpec
from modeldeploy.server.contract import retrain as c
from modeldeploy.server.contract import sources as src

# ``modeldeploy gate``'s command and its --current flag (the server's CLI; the contract
# names the rest of its flags).
GATE_COMMAND = ("modeldeploy", "gate")
FLAG_GATE_CURRENT = "--current"
JOB_API = "batch/v1"


def _bundle_ref(spec: Spec, uri: str, sha256: str) -> ModelRef:
    """A bundle as the fetch init container takes it: a registry version with the spec's
    tracking server and credentials, a retrained one with the labelled-data store's S3
    settings (it was written with them), any other with the spec's own."""
    model, rs = spec.template.model, spec.retrain
    if uri.startswith(src.MODELS_SCHEME):
        return ModelRef(model.name, "", uri, sha256, None, model.mlflow)
    if rs is not None and retrainoutput.is_output(spec, uri) and retrainoutput.is_s3(uri):
        return ModelRef(model.name, "", uri, sha256, rs.labelled_data.s3)
    s3 = (model.s3 or S3Source()) if retrainoutput.is_s3(uri) else None
    return ModelRef(model.name, "", uri, sha256, s3)


def _fetch(name: str, image: str, policy: str, model: ModelRef, dest: str) -> Json:
    env = s3_env(model.s3) + mlflow_env(model.mlflow)
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": policy,
        "command": fetch_command(model, dest),
        **({"env": env} if env else {}),
        "securityContext": restricted_container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "bundles", "mountPath": c.BUNDLES_DIR}],
    }


def _job(owner: Owner, spec: Spec, kind: JobKind, run: Json, pod: Json, deadline: int) -> Json:
    name = str(run["trainJob" if kind == "train" else "gateJob"])
    labels = {d.LABEL_RETRAIN_RUN: str(run["id"]), d.LABEL_RETRAIN_JOB: kind}
    meta = metadata(owner, name, "retrain", **labels)
    pod_labels = {**meta["labels"]}
    return {
        "apiVersion": JOB_API,
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(),
                    "volumes": [
                        {"name": "bundles", "emptyDir": {"sizeLimit": "4Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                    ],
                    **pod,
                },
            },
        },
    }


def _main(name: str, image: str, policy: str) -> Json:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": policy,
        "securityContext": restricted_container_security(),
        # The answer, and nothing else: never the logs (they may hold anything).
        "terminationMessagePath": c.TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"name": "bundles", "mountPath": c.BUNDLES_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def train_job(owner: Owner, spec: Spec, run: Json) -> Json:
    """The trainer Job of ``run`` (the ``status.retrain.current`` the state machine wrote)."""
    rs = _retrain(spec)
    t, model = rs.trainer, spec.template.model
    env = [
        *({"name": k, "value": v} for k, v in t.env),
        {"name": c.ENV_RUN, "value": str(run["id"])},
        {"name": c.ENV_DATA, "value": rs.labelled_data.uri},
        {"name": c.ENV_SINCE, "value": str(run["since"])},
        {"name": c.ENV_UNTIL, "value": str(run["until"])},
        *(
            [{"name": c.ENV_REFERENCE_SINCE, "value": str(run["referenceSince"])}]
            if run.get("referenceSince")
            else []
        ),
        {"name": c.ENV_CURRENT, "value": c.CURRENT_BUNDLE},
        {"name": c.ENV_CURRENT_VERSION, "value": _current_version(run)},
        {"name": c.ENV_CURRENT_URI, "value": str(run["currentURI"])},
        {"name": c.ENV_CURRENT_SHA256, "value": str(run["currentSHA256"])},
        *_destination_env(spec, run),
        {"name": c.ENV_TRAINER_IMAGE, "value": t.image},
        *_s3_settings_env(rs.labelled_data.s3),
        *s3_env(rs.labelled_data.s3),
        *mlflow_env(model.mlflow),
    ]
    main = _main("trainer", t.image, spec.template.image_pull_policy)
    if t.command:
        main["command"] = list(t.command)
    if t.args:
        main["args"] = list(t.args)
    main["env"] = env
    if t.resources:
        main["resources"] = dict(t.resources)
    current = _bundle_ref(spec, str(run["currentURI"]), str(run["currentSHA256"]))
    image, policy = spec.template.image, spec.template.image_pull_policy
    pod = {
        "initContainers": [_fetch("fetch-current", image, policy, current, c.CURRENT_BUNDLE)],
        "containers": [main],
    }
    return _job(owner, spec, "train", run, pod, t.deadline_seconds)


def gate_job(owner: Owner, spec: Spec, run: Json) -> Json:
    """The gate Job of ``run``: the candidate the trainer registered against the stable it
    started from, on the same labelled-data window; exit status 0 is a pass."""
    rs = _retrain(spec)
    data = rs.labelled_data
    image, policy = spec.template.image, spec.template.image_pull_policy
    current = _bundle_ref(spec, str(run["currentURI"]), str(run["currentSHA256"]))
    candidate = _bundle_ref(spec, str(run["modelURI"]), str(run["sha256"]))
    main = _main("gate", image, policy)
    main["command"] = [
        *GATE_COMMAND,
        c.CANDIDATE_BUNDLE,
        FLAG_GATE_CURRENT,
        c.CURRENT_BUNDLE,
        c.FLAG_GATE_CANDIDATE_SHA256,
        candidate.sha256,
        c.FLAG_GATE_CURRENT_SHA256,
        current.sha256,
        c.FLAG_GATE_LABELLED_DATA,
        data.uri,
        *s3_flags(data.s3),
        c.FLAG_GATE_SINCE,
        str(run["since"]),
        c.FLAG_GATE_UNTIL,
        str(run["until"]),
        c.FLAG_GATE_MAX_REGRESSION,
        f"{rs.max_regression:g}",
        c.FLAG_GATE_RESULT_FILE,
        c.TERMINATION_LOG,
    ]
    if env := s3_env(data.s3):
        main["env"] = env
    if spec.template.resources:
        main["resources"] = dict(spec.template.resources)
    pod = {
        "initContainers": [
            _fetch("fetch-current", image, policy, current, c.CURRENT_BUNDLE),
            _fetch("fetch-candidate", image, policy, candidate, c.CANDIDATE_BUNDLE),
        ],
        "containers": [main],
    }
    return _job(owner, spec, "gate", run, pod, rs.trainer.deadline_seconds)


def _current_version(run: Json) -> str:
    """The stable version the run started from (a run an older operator started has only
    its registry URI)."""
    if run.get("currentVersion"):
        return str(run["currentVersion"])
    try:
        return src.split_models_uri(str(run["currentURI"]))[1]
    except ValueError:
        return ""


def _destination_env(spec: Spec, run: Json) -> list[Json]:
    """Where the new bundle goes: the run's output object and version without a registry,
    else the registered model of the stable's version and the tracking server."""
    if "outputURI" in run:
        out: list[Json] = [
            {"name": c.ENV_OUTPUT, "value": str(run["outputURI"])},
            {"name": c.ENV_VERSION, "value": str(run.get("outputVersion", ""))},
        ]
        if spec.retrain is not None and spec.retrain.output_secret:
            ref = {"name": spec.retrain.output_secret, "key": c.OUTPUT_TOKEN_KEY}
            out.append({"name": c.ENV_OUTPUT_TOKEN, "valueFrom": {"secretKeyRef": ref}})
        return out
    name, _, _ = src.split_models_uri(str(run["currentURI"]))
    mlflow = spec.template.model.mlflow
    return [
        {"name": c.ENV_REGISTERED_MODEL, "value": name},
        {"name": c.ENV_TRACKING_URI, "value": mlflow.tracking_uri if mlflow else ""},
    ]


def _s3_settings_env(s3: S3Source | None) -> list[Json]:
    """Where the store is, for a trainer that takes no flags (``modeldeploy retrain`` reads
    these; a user's trainer may too)."""
    if s3 is None:
        return []
    out = [
        {"name": name, "value": value}
        for name, value in ((c.ENV_S3_ENDPOINT, s3.endpoint), (c.ENV_S3_REGION, s3.region))
        if value
    ]
    if s3.path_style is not None:
        out.append({"name": c.ENV_S3_PATH_STYLE, "value": str(s3.path_style).lower()})
    return out


def _retrain(spec: Spec) -> RetrainSpec:
    if spec.retrain is None:
        raise ValueError("spec.retrain is not set")
    return spec.retrain


# --- reading them back ------------------------------------------------------------------


def job_summary(body: Mapping[str, Any]) -> Json:
    """What the Jobs index keeps of a Job: its name and state (memory, not API calls)."""
    status = body.get("status") or {}
    state, reason = "running", ""
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            state = "succeeded"
        elif cond.get("type") == "Failed":
            state, reason = "failed", str(cond.get("reason") or "")
    return {"name": body["metadata"]["name"], "state": state, "reason": reason}


def pod_summary(body: Mapping[str, Any]) -> Json:
    """What the index keeps of a Job's pod: its Job and its main container's end (the
    termination message, cut to the contract's limit)."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    out: Json = {"job": str(labels.get("job-name") or labels.get("batch.kubernetes.io/job-name"))}
    for cs in (body.get("status") or {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if cs.get("name") in ("trainer", "gate") and term:
            out["exitCode"] = term.get("exitCode")
            out["message"] = str(term.get("message") or "")[: c.TERMINATION_MESSAGE_MAX]
    return out


def job_states(jobs: Iterable[Json], pods: Iterable[Json]) -> dict[str, JobState]:
    """The Jobs of one ModelDeployment with their pods' answers, by Job name."""
    ends = {p["job"]: p for p in pods if "exitCode" in p}
    out = {}
    for job in jobs:
        end = ends.get(job["name"], {})
        code = end.get("exitCode")
        out[job["name"]] = JobState(
            name=job["name"],
            state=job["state"],
            reason=job.get("reason", ""),
            message=str(end.get("message", "")),
            exit_code=None if code is None else int(code),
        )
    return out


def stable_of(status: RolloutStatus, registry: bool = True) -> Stable | None:
    """The stable slot's model, when it is a concrete registry version (``registry``) or,
    without a registry, a pinned bundle (its version is the spec's, or an adopted one's)."""
    slot = status.slots.get(status.stable_slot) if status.stable_slot else None
    if slot is None:
        return None
    model = slot.template.model
    if not registry:
        if not model.sha256 or model.bundle_uri.startswith(src.MODELS_SCHEME):
            return None
        return Stable(uri=model.bundle_uri, version=model.version, sha256=model.sha256)
    try:
        _, version, alias = src.split_models_uri(model.bundle_uri)
    except ValueError:
        return None
    if alias or not model.sha256:
        return None
    return Stable(uri=model.bundle_uri, version=version, sha256=model.sha256)

"""The schema of ``spec.retrain``: the training Job's template, what triggers it, its limits,
the labelled data it reads, the gate and the approval (the parser is ``retrainspec``)."""

from __future__ import annotations

from modeldeploy.operator import defaults as d
from modeldeploy.operator.schema.openapi import Schema, _int, _list, _num, _obj, _quantity_map, _str
from modeldeploy.operator.schema.podspec import ENV_NAME_PATTERN
from modeldeploy.operator.schema.sources import s3_schema

# (rule, message) on the whole spec: a registry bundle's retrained version is registered
# under NAME and the operator moves ALIAS to it, so it must be an alias of a registered model;
# any other bundle's is written under spec.retrain.output and adopted in status.
RETRAIN_RULES = [
    (
        "!has(self.retrain) || (has(self.retrain.output) ? "
        "!self.model.bundleURI.startsWith('models:/') : "
        "self.model.bundleURI.matches('^models:/[^/@]+@[^/@]+$'))",
        "retrain needs spec.model.bundleURI models:/NAME@ALIAS (the retrained version is "
        "registered under NAME and ALIAS is moved to it once it passes the gate), or "
        "spec.retrain.output for an s3:// or http(s):// bundle (and only then)",
    ),
]
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
OUTPUT_URI_PATTERN = r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]|https?://[^/?#@\s]+)(/[^?#]*)?$"


def _trainer_schema() -> Schema:
    env = _obj(
        {
            "name": _str(pattern=ENV_NAME_PATTERN, minLength=1, maxLength=256),
            "value": _str(maxLength=32768),
        },
        required=["name"],
        rules=[
            (
                "!self.name.startsWith('MODELDEPLOY_')",
                "env names beginning MODELDEPLOY_ are what the operator hands the trainer",
            )
        ],
    )
    return _obj(
        {
            "image": _str("The training image.", minLength=1, maxLength=512),
            "command": _list(_str(maxLength=4096), "The entrypoint (the image's if unset).", 64),
            "args": _list(_str(maxLength=4096), "Its arguments.", 256),
            "env": _list(
                env,
                "Extra environment: {name, value} only (credentials come from the Secrets "
                "named in spec.model and spec.retrain.labelledData, as references).",
                64,
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
            ),
            "resources": _obj(
                {"requests": _quantity_map(), "limits": _quantity_map()},
                description="Container resources of the trainer.",
            ),
            "activeDeadlineSeconds": _int(
                "A run still training after this long is stopped and counts as failed.",
                minimum=1,
                default=d.RETRAIN_DEADLINE_SECONDS,
            ),
        },
        required=["image"],
        description="The training Job's container. It is handed the run, the data window and "
        "the stable bundle as MODELDEPLOY_RETRAIN_* variables, registers the new version "
        "under the bundle's registered model (or writes it to MODELDEPLOY_RETRAIN_OUTPUT) "
        'and writes {"version", "modelURI", "sha256"} to /dev/termination-log.',
    )


def retrain_schema() -> Schema:
    return _obj(
        {
            "trainer": _trainer_schema(),
            "trigger": _obj(
                {
                    "alerts": _list(
                        _str(maxLength=253),
                        "Alerts that start a run when firing for the stable model's version "
                        f"(e.g. {d.ALERT_DRIFT}, {d.ALERT_LIVE_PERFORMANCE}, "
                        f"{d.ALERT_CONCEPT_DRIFT}).",
                        32,
                        default=list(d.RETRAIN_ALERTS),
                    ),
                    "intervalSeconds": _int(
                        "Fallback schedule: also start a run when the last one started this "
                        "long ago (off unless set).",
                        minimum=60,
                    ),
                },
                default={},
                description="What starts a run (a drift signal, a schedule only as fallback).",
            ),
            "cooldownSeconds": _int(
                "No run starts sooner than this after the last one started.",
                minimum=0,
                default=d.RETRAIN_COOLDOWN_SECONDS,
            ),
            "maxPerDay": _int(
                "At most this many runs start in any 24 hours.",
                minimum=1,
                maximum=100,
                default=d.RETRAIN_MAX_PER_DAY,
            ),
            "labelledData": _obj(
                {
                    "uri": _str(
                        "The labelled-data store, s3://BUCKET/PREFIX: the model servers write "
                        "what /feedback labels there; the trainer and the gate read it.",
                        pattern=S3_URI_PATTERN,
                        maxLength=1024,
                    ),
                    "s3": s3_schema(),
                    "windowSeconds": _int(
                        "The recent-data window a run trains and is gated on.",
                        minimum=60,
                        default=d.RETRAIN_WINDOW_SECONDS,
                    ),
                    "collectSeconds": _int(
                        "A run a trigger alert started ends its window this long after the "
                        "alert, so the labels of the drift's first minutes (which arrive after "
                        "it fired) are trained and gated on; raise it when labels come late.",
                        minimum=0,
                        maximum=86400,
                        default=d.RETRAIN_COLLECT_SECONDS,
                    ),
                },
                required=["uri"],
                description="Where recent labelled data is kept (also passed to the model "
                "servers, which write it).",
            ),
            "output": _obj(
                {
                    "uri": _str(
                        "Where the trainer writes each new bundle (URI/NAMESPACE/NAME/"
                        "VERSION.tar.gz): s3://BUCKET/PREFIX, with the S3 settings and "
                        "credentials of labelledData, or http(s)://HOST[:PORT][/PATH], an "
                        "HTTP PUT (read back, by the gate and the model pods, with a GET "
                        "without credentials). Only for an s3:// or http(s):// bundleURI; a "
                        "models:/ one registers its new versions instead.",
                        pattern=OUTPUT_URI_PATTERN,
                        maxLength=1024,
                    ),
                    "credentialsSecret": _str(
                        "An http(s) output only: a Secret whose key 'token' the trainer sends "
                        "as 'Authorization: Bearer TOKEN' with its PUT.",
                        maxLength=253,
                    ),
                },
                required=["uri"],
                rules=[
                    (
                        "!has(self.credentialsSecret) || !self.uri.startsWith('s3://')",
                        "credentialsSecret is for an http(s) output (an s3:// one is written "
                        "with labelledData's S3 settings)",
                    )
                ],
                description="The new bundles' destination without a registry. A version "
                "that passes the gate is adopted (status.retrain.adopted) and runs in place "
                "of spec.model's bundle, which is never edited, until the spec names "
                "another.",
            ),
            "gate": _obj(
                {
                    "maxRegression": _num(
                        "How much worse than the stable, on the same recent data, the "
                        "candidate may be and still pass.",
                        minimum=0,
                        maximum=1,
                        default=d.RETRAIN_MAX_REGRESSION,
                    )
                },
                default={},
                description="The promotion gate (modeldeploy gate, run as a Job).",
            ),
            "approval": _str(
                "auto: a candidate that passes the gate is rolled out at once; manual: it "
                "waits for the promote control.",
                enum=["auto", "manual"],
                default="auto",
            ),
        },
        required=["trainer", "labelledData"],
        description="Retrain on the stable model's drift: a training Job, then a gate Job; a "
        "version that passes becomes the alias's (or, with output, is adopted) and rolls "
        "out by this ModelDeployment's strategy and analysis.",
    )


RETRAIN_PHASES = (
    "Idle",
    "Training",
    "Gating",
    "AwaitingApproval",
    "Promoting",
    "Failed",
    "Rejected",
)


def _run_status() -> Schema:
    time = _str(format="date-time")
    return _obj(
        {
            "id": _str("The run's id (MODELDEPLOY_RETRAIN_RUN), unique per ModelDeployment."),
            "trigger": _str(
                "What started it: alert, interval or control.",
                enum=["alert", "interval", "control"],
            ),
            "alert": _str("The alert that fired for the stable version."),
            "value": _str("Its value."),
            "since": time,
            "until": time,
            "referenceSince": _str(
                "When the trigger alert became active: the trainer profiles the new "
                "version's inputs (its drift reference) from the rows predicted since then.",
                format="date-time",
            ),
            "startedAt": time,
            "finishedAt": time,
            "trainJob": _str(),
            "gateJob": _str(),
            "currentURI": _str(
                "The stable bundle it started from (models:/NAME/VERSION with a registry)."
            ),
            "currentSHA256": _str(),
            "currentVersion": _str("The stable's version."),
            "outputURI": _str("Without a registry: the object the trainer writes."),
            "outputVersion": _str("Without a registry: the version its card carries."),
            "version": _str("The version the trainer made (a registry version, if one)."),
            "modelURI": _str(),
            "sha256": _str(),
            "gateSummary": _str("The gate's summary line."),
            "gateVerdict": _str("The gate's verdict.", enum=["passed", "rejected"]),
            "gateTable": _str(
                "The gate's checks as JSON, kept only until the registry has them "
                "(modeldeploy.gate.* tags on the version)."
            ),
            "gateTags": _obj(
                {
                    "state": _str(enum=["pending", "done", "failed"]),
                    "attemptedAt": time,
                    "error": _str("Why the last write failed (retried every 30 s)."),
                },
                description="Writing the gate's table to the registry version.",
            ),
            "outcome": _str(enum=["Promoted", "Failed", "Rejected", "Superseded"]),
            "reason": _str(),
        }
    )


def retrain_status_schema() -> Schema:
    run = _run_status()
    return _obj(
        {
            "phase": _str(enum=list(RETRAIN_PHASES)),
            "message": _str(),
            "runs": _int("Runs started so far (the last run's id)."),
            "watchingSince": _str(
                "When the fallback schedule started counting.", format="date-time"
            ),
            "lastStartedAt": _str(format="date-time"),
            "starts": _list(_str(format="date-time"), "Run starts in the last 24 hours.", 100),
            "held": _str("Why a due run is held (cooldown, daily limit, rollout)."),
            "unloadedAlerts": _str("Trigger alerts that are not loaded alerting rules."),
            "current": run,
            "history": _list(run, "The last runs, newest first.", d.RETRAIN_HISTORY_LIMIT),
            "adopted": _obj(
                {
                    "uri": _str("The retrained bundle that runs in place of the spec's."),
                    "sha256": _str(),
                    "version": _str(),
                    "run": _str("The run that made it."),
                    "adoptedAt": _str(format="date-time"),
                    "over": _obj(
                        {"bundleURI": _str(), "sha256": _str()},
                        description="The spec's bundle it stands in for: once the spec "
                        "names another, that one runs.",
                    ),
                },
                description="Without a registry (spec.retrain.output): the version that "
                "last passed the gate.",
            ),
        },
        description="Retraining (spec.retrain): the run in progress and the last runs.",
    )

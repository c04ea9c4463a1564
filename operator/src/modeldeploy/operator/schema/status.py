"""The ModelDeployment's status, declared in full: the apiserver prunes undeclared fields."""

from __future__ import annotations

from modeldeploy.operator import defaults as d
from modeldeploy.operator.schema.openapi import (
    Schema,
    _bool,
    _int,
    _list,
    _num,
    _obj,
    _quantity_map,
    _str,
)
from modeldeploy.operator.schema.retrain import retrain_status_schema


def _model_status() -> Schema:
    """The slot's model as the spec gave it (a field left out here would be pruned, and the
    slot's pods rebuilt from what is left)."""
    s3 = _obj(
        {"endpoint": _str(), "region": _str(), "pathStyle": _bool(), "credentialsSecret": _str()}
    )
    mlflow = _obj({"trackingURI": _str(), "credentialsSecret": _str()})
    return _obj(
        {
            "name": _str(),
            "version": _str(),
            "bundleURI": _str(),
            "sha256": _str(),
            "s3": s3,
            "mlflow": mlflow,
        }
    )


def _resolved_status() -> Schema:
    return _obj(
        {
            "requested": _str("The bundleURI of the spec (models:/NAME@ALIAS or NAME/VERSION)."),
            "trackingURI": _str(),
            "uri": _str("The concrete version it resolved to, models:/NAME/VERSION."),
            "version": _str("The registry version."),
            "alias": _str(),
            "cardVersion": _str(
                "The version's modeldeploy.card_version tag: the model version the slots run "
                "and report (in place of spec.model.version)."
            ),
            "sha256": _str("The pin: spec.model.sha256 or the version's digest tag."),
            "resolvedAt": _str(format="date-time"),
            "message": _str("Why the registry could not be read, when this is an older answer."),
        },
        description="The registry version a models:/ bundleURI resolved to: what the slots run.",
    )


def status_schema() -> Schema:
    slot = _obj(
        {
            "version": _str(),
            "revision": _str(),
            "serveRole": _str("The --role the pods were created with."),
            "model": _model_status(),
            "server": _obj(
                {
                    "image": _str(),
                    "imagePullPolicy": _str(),
                    "resources": _obj({"requests": _quantity_map(), "limits": _quantity_map()}),
                }
            ),
        }
    )
    condition = _obj(
        {
            "type": _str(),
            "status": _str(enum=["True", "False", "Unknown"]),
            "reason": _str(),
            "message": _str(),
            "lastTransitionTime": _str(format="date-time"),
            "observedGeneration": _int(),
        },
        required=["type", "status"],
    )
    history = _obj(
        {
            "version": _str(),
            "revision": _str(),
            "outcome": _str(),
            "reason": _str(),
            "message": _str(),
            "startedAt": _str(format="date-time"),
            "finishedAt": _str(format="date-time"),
            "modelURI": _str("The bundle URI the rollout ran (models:/NAME/VERSION)."),
            "rule": _str("The rule (alert, check or reason) that rolled it back."),
            "value": _str("The rule's value when it fired."),
            "writeBack": _obj(
                {
                    "state": _str(enum=["pending", "done", "failed"]),
                    "trackingURI": _str(),
                    "alias": _str(),
                    "message": _str(),
                    "at": _str(format="date-time"),
                },
                description="The outcome written back to the MLflow registry "
                "(spec.model.mlflow.writeBack).",
            ),
        }
    )
    result = _obj(
        {
            "kind": _str(enum=["alert", "check"]),
            "name": _str(),
            "value": _str(),
            "outcome": _str(),
            "at": _str(format="date-time"),
        }
    )
    return _obj(
        {
            "phase": _str(enum=list(d.PHASES)),
            "message": _str(),
            "strategy": _str(),
            "observedGeneration": _int(),
            "stableSlot": _str(enum=list(d.SLOTS)),
            "stableVersion": _str(),
            "stableRevision": _str(),
            "stableServed": _bool("The stable revision has been seen serving."),
            "candidateSlot": _str(enum=list(d.SLOTS)),
            "candidateVersion": _str(),
            "candidateRevision": _str(),
            "abortedRevision": _str("A revision rolled back; not retried until spec or retry."),
            "canaryWeight": _int(),
            "trafficShare": _int(
                "Percent of requests the candidate can really get at canaryWeight: the route's "
                "weight, or with the replicas provider its share of the pods."
            ),
            "currentStep": _int(),
            "stepStartedAt": _str(format="date-time"),
            "rolloutStartedAt": _str(format="date-time"),
            "paused": _bool("Paused by the pause control."),
            "pauseStartedAt": _str(format="date-time"),
            "pauseReason": _str("Why the rollout paused by itself (e.g. too few predictions)."),
            "promoted": _bool("The candidate of a blue/green was switched to; post-promotion."),
            "previousSlot": _str(enum=list(d.SLOTS)),
            "scaleDownAt": _str(format="date-time"),
            "lastControl": _str("The last control annotation value applied."),
            "consecutiveErrors": _int(),
            "replicas": _int(
                "Replicas of the stable slot's Deployment (the scale subresource's count)."
            ),
            "selector": _str(
                "Label selector of the stable slot's pods (what an autoscaler measures)."
            ),
            "slots": _obj(dict.fromkeys(d.SLOTS, slot)),
            "resolvedModel": _resolved_status(),
            "retrain": retrain_status_schema(),
            "analysis": _obj(
                {
                    "lastSampleAt": _str(format="date-time"),
                    "outcome": _str(enum=["Passed", "Failed", "Inconclusive", "Waiting"]),
                    "message": _str(),
                    "passedSamples": _int(),
                    "predictions": _int("Predictions served in the current analysis step."),
                    "predictionsSeen": _num("The server's counter at the last sample."),
                    "predictionsOf": _str("role/version the counter belongs to."),
                    "scrapedAs": _str("role/version first seen scraped in this rollout."),
                    "waitingSince": _str(format="date-time"),
                    "results": _list(result, "", d.ANALYSIS_RESULTS_LIMIT),
                }
            ),
            "history": _list(history, "The last rollouts, newest first.", d.HISTORY_LIMIT),
            "conditions": _list(
                condition,
                "",
                16,
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
            ),
        }
    )

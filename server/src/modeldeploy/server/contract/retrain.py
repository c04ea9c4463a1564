"""The retraining loop's published names: what the labelled-data store holds, what a training
Job and a gate Job are handed, and what they answer.

Three parties meet here. The model server writes the labelled-data store (every prediction
that ``/feedback`` labelled); the operator starts a training Job and then a gate Job when the
stable model drifts; those Jobs (the user's trainer, and ``modeldeploy retrain`` /
``modeldeploy gate`` from the server image) read the store. None of them imports another, so
the names they agree on live in the contract: standard library only.
"""

from __future__ import annotations

from typing import Final

# --- The labelled-data store -------------------------------------------------------------
# Parquet files under one location (``s3://BUCKET/PREFIX`` or a folder on a volume), one
# writer per server process: LOCATION/MODEL/DATE/POD-FIRSTMS-SEQ.parquet. A row is one
# labelled prediction. The feature columns keep the card's names and dtypes; the reserved
# columns start with COLUMN_PREFIX, which a card's feature name may not.
COLUMN_PREFIX: Final = "_md_"
COLUMN_TIME: Final = "_md_time"  # when the label arrived (UTC timestamp, ms)
COLUMN_PREDICTED_AT: Final = "_md_predicted_at"  # when the prediction was made
COLUMN_REQUEST_ID: Final = "_md_request_id"
COLUMN_VERSION: Final = "_md_version"  # the model version that predicted
COLUMN_ROLE: Final = "_md_role"  # stable or candidate
COLUMN_PREDICTION: Final = "_md_prediction"
COLUMN_LABEL: Final = "_md_label"  # the ground truth /feedback gave
RESERVED_COLUMNS: Final = (
    COLUMN_TIME,
    COLUMN_PREDICTED_AT,
    COLUMN_REQUEST_ID,
    COLUMN_VERSION,
    COLUMN_ROLE,
    COLUMN_PREDICTION,
    COLUMN_LABEL,
)

# ``modeldeploy serve`` writes the store when given its location (S3 settings and
# credentials as for ``modeldeploy fetch``: the FLAG_S3_* flags, MODELDEPLOY_S3_* variables).
FLAG_LABELLED_DATA: Final = "--labelled-data"
ENV_LABELLED_DATA: Final = "MODELDEPLOY_LABELLED_DATA"
ENV_POD_NAME: Final = "MODELDEPLOY_POD_NAME"  # names a writer's files (the downward API)

# --- What a training Job is handed (environment variables) -------------------------------
ENV_RUN: Final = "MODELDEPLOY_RETRAIN_RUN"  # the run's id, unique per ModelDeployment
ENV_DATA: Final = "MODELDEPLOY_RETRAIN_DATA"  # the labelled-data store's location
ENV_SINCE: Final = "MODELDEPLOY_RETRAIN_SINCE"  # the recent-data window, RFC 3339 UTC
ENV_UNTIL: Final = "MODELDEPLOY_RETRAIN_UNTIL"
# When the trigger alert became active (the drift began): the new bundle's drift reference
# is the rows predicted since then, so it describes the inputs it was retrained for.
ENV_REFERENCE_SINCE: Final = "MODELDEPLOY_RETRAIN_REFERENCE_SINCE"
ENV_CURRENT: Final = "MODELDEPLOY_RETRAIN_CURRENT"  # the stable bundle, fetched and verified
ENV_CURRENT_VERSION: Final = "MODELDEPLOY_RETRAIN_CURRENT_VERSION"
ENV_CURRENT_URI: Final = "MODELDEPLOY_RETRAIN_CURRENT_URI"  # models:/NAME/VERSION
ENV_CURRENT_SHA256: Final = "MODELDEPLOY_RETRAIN_CURRENT_SHA256"  # its pinned bundle digest
ENV_REGISTERED_MODEL: Final = "MODELDEPLOY_RETRAIN_REGISTERED_MODEL"  # where to register
# Without a registry (spec.retrain.output): the one s3://BUCKET/KEY.tar.gz object, or the
# http(s):// URL to PUT, the trainer writes the new bundle to, and the version its card must
# carry (unique per ModelDeployment: the rules key alerts by version). Never both these and
# ENV_REGISTERED_MODEL. An http(s) PUT carries "Authorization: Bearer TOKEN" when the
# output's Secret gives one (its key OUTPUT_TOKEN_KEY).
ENV_OUTPUT: Final = "MODELDEPLOY_RETRAIN_OUTPUT"
ENV_VERSION: Final = "MODELDEPLOY_RETRAIN_VERSION"
ENV_OUTPUT_TOKEN: Final = "MODELDEPLOY_RETRAIN_OUTPUT_TOKEN"
OUTPUT_TOKEN_KEY: Final = "token"
ENV_TRACKING_URI: Final = "MODELDEPLOY_MLFLOW_TRACKING_URI"
ENV_TRAINER_IMAGE: Final = "MODELDEPLOY_RETRAIN_IMAGE"  # for the new card's lineage
# How to reach an s3:// store (spec.retrain.labelledData.s3; credentials as for fetch).
ENV_S3_ENDPOINT: Final = "MODELDEPLOY_RETRAIN_S3_ENDPOINT"
ENV_S3_REGION: Final = "MODELDEPLOY_RETRAIN_S3_REGION"
ENV_S3_PATH_STYLE: Final = "MODELDEPLOY_RETRAIN_S3_PATH_STYLE"  # "true" or "false"
# Where the Jobs' pods find the bundles their init containers fetched.
BUNDLES_DIR: Final = "/var/run/modeldeploy/bundles"
CURRENT_BUNDLE: Final = BUNDLES_DIR + "/current"
CANDIDATE_BUNDLE: Final = BUNDLES_DIR + "/candidate"

# --- What they answer --------------------------------------------------------------------
# One JSON object in the container's termination message (Kubernetes keeps at most 4096
# bytes of it; the operator reads it from the pod's terminated state).
TERMINATION_LOG: Final = "/dev/termination-log"
TERMINATION_MESSAGE_MAX: Final = 4096
# The trainer: {"version": "7", "modelURI": "models:/NAME/7", "sha256": "HEX"}, or with an
# output: {"version": ENV_VERSION's, "modelURI": ENV_OUTPUT's, "sha256": "HEX"}.
RESULT_VERSION: Final = "version"
RESULT_MODEL_URI: Final = "modelURI"
RESULT_SHA256: Final = "sha256"
# The gate: {"passed": true, "summary": "...", "checks": [{"name", "value", "threshold",
# "passed"}, ...]} (checks cut to fit the message, summary kept).
RESULT_PASSED: Final = "passed"
RESULT_SUMMARY: Final = "summary"
RESULT_CHECKS: Final = "checks"

# ``modeldeploy gate`` on the store, as the gate Job runs it.
FLAG_GATE_LABELLED_DATA: Final = "--labelled-data"
FLAG_GATE_SINCE: Final = "--since"
FLAG_GATE_UNTIL: Final = "--until"
FLAG_GATE_RESULT_FILE: Final = "--result-file"
FLAG_GATE_MAX_REGRESSION: Final = "--max-regression"
FLAG_GATE_CANDIDATE_SHA256: Final = "--candidate-sha256"
FLAG_GATE_CURRENT_SHA256: Final = "--current-sha256"

"""The model server's published contract: the only server module the operator may import.

Everything another component relies on lives here, so that a rename is one edit and a
test can check the chart's Prometheus rules, the operator's pod specs and the server agree:
metric and label names, the bundle's file names, the model card's schema version, the HTTP
paths probes and scrapers use, and the flags of ``modeldeploy serve``. Its submodules build
on these names: ``rules`` holds the Prometheus recording rules and alerts (the one source of
the chart's rule file and of every ModelDeployment's PrometheusRule) and ``promql`` the
ad-hoc PromQL the README prints.

Standard library only: the operator image has no scikit-learn, FastAPI or numpy.
"""

from __future__ import annotations

from typing import Final

# --- The model bundle -------------------------------------------------------------------

MODEL_FILE: Final = "model.joblib"  # a joblib pickle (the default format)
MODEL_FILE_SKOPS: Final = "model.skops"  # skops: rebuilds only the types the card trusts
MODEL_FILES: Final = (MODEL_FILE, MODEL_FILE_SKOPS)  # a bundle holds exactly one of them
CARD_FILE: Final = "model-card.json"
CARD_SCHEMA_VERSION: Final = "modeldeploy.io/model-card/v1"

# --- HTTP -------------------------------------------------------------------------------

DEFAULT_PORT: Final = 8080
LIVE_PATH: Final = "/v2/health/live"
READY_PATH: Final = "/v2/health/ready"
METRICS_PATH: Final = "/metrics"
PREDICT_PATH: Final = "/predict"
DRIFT_PATH: Final = "/drift"
CARD_PATH: Final = "/model-card"
FEEDBACK_PATH: Final = "/feedback"
REQUEST_ID_HEADER: Final = "x-request-id"  # always the server's (random): /feedback's key
CLIENT_REQUEST_ID_HEADER: Final = "x-client-request-id"  # the client's own x-request-id
MODEL_NAME_HEADER: Final = "x-model-name"
MODEL_VERSION_HEADER: Final = "x-model-version"
INFER_PATH_TEMPLATE: Final = "/v2/models/{name}/infer"
MODEL_METADATA_PATH_TEMPLATE: Final = "/v2/models/{name}"

# --- The ``modeldeploy serve`` command line ----------------------------------------------

SERVE_COMMAND: Final = ("modeldeploy", "serve")
FLAG_SHA256: Final = "--sha256"
FLAG_HOST: Final = "--host"
FLAG_PORT: Final = "--port"
FLAG_ROLE: Final = "--role"
ROLES: Final = ("stable", "candidate")
# A headless Service over all of a ModelDeployment's pods: where /feedback for a prediction
# another replica made is forwarded (``modeldeploy.server.peers``).
FLAG_FEEDBACK_PEERS: Final = "--feedback-peers"
ENV_POD_IP: Final = "MODELDEPLOY_POD_IP"  # the pod's own address (downward API status.podIP)
ENV_SHA256: Final = "MODELDEPLOY_SHA256"  # read when --sha256 is not given (pods pass it this way)

# --- Metrics ----------------------------------------------------------------------------
# Every series carries LABEL_MODEL, LABEL_VERSION and LABEL_ROLE. All are counters or
# histograms so that they sum across replicas and over any window; the reference fractions
# are constants exported beside the live bin counts so PSI, KS and chi-square are PromQL.

LABEL_MODEL: Final = "model"
LABEL_VERSION: Final = "version"
LABEL_ROLE: Final = "role"
LABEL_OUTCOME: Final = "outcome"
LABEL_FEATURE: Final = "feature"
LABEL_BIN: Final = "bin"
LABEL_CLASS: Final = "class"
COMMON_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_ROLE)

# Names below are the names Prometheus sees (counters end in ``_total``).
METRIC_REQUESTS: Final = "modeldeploy_requests_total"  # {outcome}
METRIC_REQUEST_DURATION: Final = "modeldeploy_request_duration_seconds"  # histogram
METRIC_FEATURE_BIN: Final = "modeldeploy_feature_bin_total"  # {feature, bin}
METRIC_FEATURE_REFERENCE_FRACTION: Final = "modeldeploy_feature_reference_fraction"  # gauge
METRIC_PREDICTIONS: Final = "modeldeploy_predictions_total"
METRIC_PREDICTION_SUM: Final = "modeldeploy_prediction_sum_total"
METRIC_PREDICTION_SUM_SQUARES: Final = "modeldeploy_prediction_sum_squares_total"
METRIC_PREDICTION_CLASS: Final = "modeldeploy_prediction_class_total"  # {class}
METRIC_FEEDBACK: Final = "modeldeploy_feedback_total"  # {outcome}
METRIC_FEEDBACK_ABS_ERROR: Final = "modeldeploy_feedback_abs_error_sum_total"
# Squared errors and labelled rows: MAE = abs / rows, RMSE = sqrt(squared / rows) in PromQL.
METRIC_FEEDBACK_SQUARED_ERROR: Final = "modeldeploy_feedback_squared_error_sum_total"
METRIC_FEEDBACK_ROWS: Final = "modeldeploy_feedback_rows_total"
# Concept drift on the labelled errors (server/changepoint.py), {detector}: alarms raised, and
# each detector's statistic as a share of its threshold (1 = the alarm level).
METRIC_CONCEPT_DRIFT_ALARMS: Final = "modeldeploy_concept_drift_alarms_total"
METRIC_CONCEPT_DRIFT_STATISTIC: Final = "modeldeploy_concept_drift_statistic"
LABEL_DETECTOR: Final = "detector"
# gauge {class}: the class shares of the model's own predictions on the reference data.
METRIC_PREDICTION_CLASS_REFERENCE_FRACTION: Final = (
    "modeldeploy_prediction_class_reference_fraction"
)
METRIC_MODEL_INFO: Final = "modeldeploy_model_info"  # gauge, 1 per loaded model {sha256}
# Cumulative twins of the bin counts (bin b counts values in bins <= b), so KS is PromQL too.
METRIC_FEATURE_CUMULATIVE: Final = "modeldeploy_feature_cumulative_total"  # {feature, bin}
# gauge {feature, bin}
METRIC_FEATURE_REFERENCE_CUMULATIVE: Final = "modeldeploy_feature_reference_cumulative_fraction"
METRIC_BATCH_ROWS: Final = "modeldeploy_batch_rows"  # histogram: rows per model call
# The labelled-data store's writer (contract.retrain): rows and Parquet files written, failed
# writes (attempts, each file counts once), and rows dropped because the sink kept failing
# while the in-memory bound was full.
METRIC_LABELLED_ROWS_WRITTEN: Final = "modeldeploy_labelled_rows_written_total"
METRIC_LABELLED_FILES_WRITTEN: Final = "modeldeploy_labelled_files_written_total"
METRIC_LABELLED_WRITE_FAILURES: Final = "modeldeploy_labelled_write_failures_total"
METRIC_LABELLED_ROWS_DROPPED: Final = "modeldeploy_labelled_rows_dropped_total"
# Rows of the reference data (gauge): the KS test's second sample size.
METRIC_REFERENCE_ROWS: Final = "modeldeploy_reference_rows"
# The pinned bundle digest (sha256 over model.joblib and model-card.json; see bundle.py).
LABEL_SHA256: Final = "sha256"
# The label of the extra drift bin of a categorical feature: values the reference never had.
UNSEEN_BIN: Final = "__unseen__"

OUTCOMES: Final = ("ok", "client_error", "server_error")
FEEDBACK_OUTCOMES: Final = ("correct", "incorrect")

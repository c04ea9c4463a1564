"""Default values of the ModelDeployment API, in one place.

The CRD's OpenAPI schema (``schema``) publishes them as ``default:`` so the apiserver fills
them in, and the spec parser (``model.py``) falls back on the same constants, so an object
read from an older apiserver or built by hand in a test behaves exactly the same.
"""

from __future__ import annotations

from typing import Final

from modeldeploy.server.contract import rules as _rules

GROUP: Final = "modeldeploy.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ModelDeployment"
PLURAL: Final = "modeldeployments"
SINGULAR: Final = "modeldeployment"
SHORT_NAMES: Final = ("md",)

REPLICAS: Final = 2
AUTOSCALING_MIN_REPLICAS: Final = 1
AUTOSCALING_TARGET_CPU: Final = 80  # percent of the CPU request, as kubectl autoscale's
IMAGE_PULL_POLICY: Final = "IfNotPresent"
PROGRESS_DEADLINE_SECONDS: Final = 600

# canary
PAUSE_INDEFINITE: Final = None
STEP_ANALYSIS_DURATION: Final = "60s"

# blue/green
AUTO_PROMOTION_ENABLED: Final = True
AUTO_PROMOTION_SECONDS: Final = 0
SCALE_DOWN_DELAY_SECONDS: Final = 30

# shadow
SHADOW_DURATION: Final = "5m"
SHADOW_AUTO_PROMOTE: Final = True

# analysis
ANALYSIS_INTERVAL: Final = "30s"
CONSECUTIVE_ERROR_LIMIT: Final = 4
ON_ERROR_LIMIT: Final = "rollback"
ON_ERROR_LIMIT_CHOICES: Final = ("rollback", "pause")
# Evidence: predictions the candidate must serve within an analysis step before it passes.
MIN_SAMPLES: Final = 100
ON_INSUFFICIENT_EVIDENCE: Final = "pause"
ON_INSUFFICIENT_EVIDENCE_CHOICES: Final = ("pause", "rollback")
# How often the operator reads the firing alerts (one request per Prometheus), so that a
# firing alert rolls back within seconds whatever analysis.interval is.
ALERTS_POLL_SECONDS: Final = 1.0
# How often the operator makes its full batched poll (four requests per Prometheus). Shorter
# than any analysis.interval, so that the rollouts' samples come due at different polls
# (each poll wakes only the ones it brings a sample for) instead of all at the same one, and
# a due sample waits at most this long for its evidence.
FULL_POLL_SECONDS: Final = 2.0

# Thresholds of the generated PrometheusRule: the chart's, from the one definition of the
# rules (modeldeploy.server.contract.rules, which charts/modeldeploy/rules/ is generated from).
THRESHOLD_DRIFT_PSI: Final = _rules.DEFAULT_THRESHOLDS.drift_psi
THRESHOLD_DIVERGENCE_STD_ERRORS: Final = _rules.DEFAULT_THRESHOLDS.divergence_std_errors
THRESHOLD_ERROR_RATE: Final = _rules.DEFAULT_THRESHOLDS.error_rate
THRESHOLD_LATENCY_P99_SECONDS: Final = _rules.DEFAULT_THRESHOLDS.latency_p99_seconds
THRESHOLD_LIVE_ACCURACY_DROP: Final = _rules.DEFAULT_THRESHOLDS.live_accuracy_drop
THRESHOLD_LIVE_ERROR_RISE: Final = _rules.DEFAULT_THRESHOLDS.live_error_rise
THRESHOLD_FOR: Final = _rules.DEFAULT_FOR
# Standard errors a live performance gap must also stand from 0 (not configurable).
LIVE_STD_ERRORS: Final = _rules.LIVE_STD_ERRORS

# The alert names of the chart's rules and of the generated PrometheusRule; the default
# ``analysis.alerts``.
ALERT_DRIFT: Final = _rules.ALERT_DRIFT
ALERT_DIVERGENCE: Final = _rules.ALERT_DIVERGENCE
ALERT_ERROR_RATE: Final = _rules.ALERT_ERROR_RATE
ALERT_LATENCY: Final = _rules.ALERT_LATENCY
DEFAULT_ALERTS: Final = _rules.ALERTS
# Loaded by the chart and in the generated PrometheusRule too, but watched only when named in
# ``analysis.alerts``: they need /feedback labels.
ALERT_LIVE_PERFORMANCE: Final = _rules.ALERT_LIVE_PERFORMANCE
ALERT_CONCEPT_DRIFT: Final = _rules.ALERT_CONCEPT_DRIFT
OPT_IN_ALERTS: Final = _rules.OPT_IN_ALERTS

HISTORY_LIMIT: Final = 10
ANALYSIS_RESULTS_LIMIT: Final = 20
MAX_STEPS: Final = 32

SLOTS: Final = ("blue", "green")
PHASES: Final = ("Progressing", "Paused", "Healthy", "Degraded")
CONTROLS: Final = ("pause", "resume", "promote", "promote-full", "abort", "retry", "retrain")

# Labels and annotations the operator puts on what it creates.
LABEL_NAME: Final = f"{GROUP}/name"
LABEL_SLOT: Final = f"{GROUP}/slot"
LABEL_ROLE: Final = f"{GROUP}/role"
LABEL_SCRAPE: Final = f"{GROUP}/scrape"
LABEL_RETRAIN_RUN: Final = f"{GROUP}/retrain-run"  # on a retraining Job and its pod
LABEL_RETRAIN_JOB: Final = f"{GROUP}/retrain-job"  # the Job's kind: train or gate
ANNOTATION_CONTROL: Final = f"{GROUP}/control"
# Condition set while the stable model's inputs drift (no rollout needed to see it).
CONDITION_INPUT_DRIFT: Final = "InputDrift"
ANNOTATION_REVISION: Final = f"{GROUP}/revision"
FIELD_MANAGER: Final = "modeldeploy"
FINALIZER: Final = f"{GROUP}/finalizer"

# Pod roles as the ``modeldeploy.io/role`` pod label (and so Prometheus's ``role``) says.
ROLE_STABLE: Final = "stable"
ROLE_CANDIDATE: Final = "candidate"
ROLE_PREVIOUS: Final = "previous"

# spec.retrain's defaults.
RETRAIN_ALERTS: Final = (ALERT_DRIFT,)  # on the stable model's version
RETRAIN_DEADLINE_SECONDS: Final = 3600
RETRAIN_COOLDOWN_SECONDS: Final = 3600
RETRAIN_MAX_PER_DAY: Final = 3
RETRAIN_WINDOW_SECONDS: Final = 86400
# A run an alert started trains on labels up to this long after it: the drift's first
# minutes, whose labels arrive after it fired, are the rows that describe the new world.
RETRAIN_COLLECT_SECONDS: Final = 60
RETRAIN_MAX_REGRESSION: Final = 0.01
RETRAIN_HISTORY_LIMIT: Final = 10
RETRAIN_JOBS_KEPT: Final = 3  # runs whose Jobs (and their logs) are kept

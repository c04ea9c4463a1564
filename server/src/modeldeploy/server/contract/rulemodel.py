"""The vocabulary of modeldeploy's Prometheus rules: labels, series and alert names, default
thresholds, and the data types a rule set is made of (``Rule``, ``Group``).

``rules`` builds the rule sets from these (and re-exports them); ``recording`` holds the
recording rules. A rule's ``text`` is its expression as laid out in the rule file, where it
is written as a YAML folded block (``expr: >-``); ``Rule.expr`` is what Prometheus reads
(``fold``). Standard library only, like the rest of the contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from modeldeploy.server.contract import LABEL_ROLE, LABEL_VERSION

# --- Labels -----------------------------------------------------------------------------
# Target labels the scrape configuration adds from the pod (see the chart's README):
# namespace, modeldeployment (pod label modeldeploy.io/name) and role (modeldeploy.io/role,
# which wins over the server's own `role`).
NAMESPACE: Final = "namespace"
MODELDEPLOYMENT: Final = "modeldeployment"
ROLE: Final = LABEL_ROLE
ROLE_STABLE: Final = "stable"
ROLE_CANDIDATE: Final = "candidate"
# One ModelDeployment.
TARGET: Final = (NAMESPACE, MODELDEPLOYMENT)
# The model version the server exports on every series (not a target label): kept so that
# an alert names the version it is about, and an old candidate's alert never counts
# against a new one.
VERSION: Final = LABEL_VERSION
# What every recorded series is aggregated by and every alert carries: the labels the
# operator matches alerts on. A new label is added here.
BY_ROLE: Final = (*TARGET, ROLE, VERSION)

# The label ModelPredictionDivergence adds: which test fired (``TEST_MEAN`` or
# ``TEST_CLASSES``); each is its own alert, with its own ``for``.
LABEL_TEST: Final = "test"
TEST_MEAN: Final = "mean"
TEST_CLASSES: Final = "classes"

# --- Names ------------------------------------------------------------------------------
ALERT_DRIFT: Final = "ModelFeatureDrift"
ALERT_DIVERGENCE: Final = "ModelPredictionDivergence"
ALERT_ERROR_RATE: Final = "ModelHighErrorRate"
ALERT_LATENCY: Final = "ModelHighLatency"
ALERT_LIVE_PERFORMANCE: Final = "ModelLivePerformanceDrop"
ALERT_CONCEPT_DRIFT: Final = "ModelConceptDrift"
# The default alerts (a ModelDeployment's default ``analysis.alerts``): every model server
# exports what they read from its first request.
ALERTS: Final = (ALERT_DRIFT, ALERT_DIVERGENCE, ALERT_ERROR_RATE, ALERT_LATENCY)
# Alerts on /feedback labels: in the chart's rules (so a ModelDeployment that names them finds
# them loaded) but opt-in, since they need labels a client may never send.
OPT_IN_ALERTS: Final = (ALERT_LIVE_PERFORMANCE, ALERT_CONCEPT_DRIFT)
# Every alert of the chart's rule file, in its order.
ALL_ALERTS: Final = (*ALERTS, *OPT_IN_ALERTS)

WINDOW: Final = "1m"
WINDOW_SECONDS: Final = 60
FEATURE_BIN: Final = "modeldeploy:feature_bin:increase1m"
FEATURE_OBSERVATIONS: Final = "modeldeploy:feature_observations:increase1m"
FEATURE_REFERENCE_FRACTION: Final = "modeldeploy:feature_reference_fraction"
FEATURE_BIN_FRACTION: Final = "modeldeploy:feature_bin_fraction:1m"
FEATURE_PSI_TERM: Final = "modeldeploy:feature_psi_term:1m"
FEATURE_PSI: Final = "modeldeploy:feature_psi:1m"
FEATURE_PSI_MAX: Final = "modeldeploy:feature_psi_max:1m"
PREDICTIONS: Final = "modeldeploy:predictions:increase1m"
PREDICTION_SUM: Final = "modeldeploy:prediction_sum:increase1m"
PREDICTION_SUM_SQUARES: Final = "modeldeploy:prediction_sum_squares:increase1m"
PREDICTION_MEAN: Final = "modeldeploy:prediction_mean:1m"
PREDICTION_VARIANCE: Final = "modeldeploy:prediction_variance:1m"
PREDICTION_MEAN_STDERR: Final = "modeldeploy:prediction_mean_stderr:1m"
PREDICTION_DIVERGENCE_ZSCORE: Final = "modeldeploy:prediction_divergence_zscore:1m"
# The predicted-class counts, and their 2xK chi-square of the candidate against the stable.
PREDICTION_CLASS: Final = "modeldeploy:prediction_class:increase1m"
PREDICTION_CLASS_STABLE: Final = "modeldeploy:prediction_class_stable:increase1m"
PREDICTION_CLASS_STABLE_MATCHED: Final = "modeldeploy:prediction_class_stable_matched:increase1m"
PREDICTION_CLASS_CHI2_TERM: Final = "modeldeploy:prediction_class_chi2_term:1m"
PREDICTION_CLASS_CHI2: Final = "modeldeploy:prediction_class_chi2:1m"
PREDICTION_CLASS_DF: Final = "modeldeploy:prediction_class_df:1m"
PREDICTION_CLASS_ZSCORE: Final = "modeldeploy:prediction_class_divergence_zscore:1m"
# Live performance from /feedback labels: accuracy of a classifier (labelled outcomes), error
# of a regressor (MAE, RMSE), the candidate against the stable, and concept drift alarms.
FEEDBACK_ROWS: Final = "modeldeploy:feedback_rows:increase1m"
FEEDBACK_OUTCOMES: Final = "modeldeploy:feedback_outcomes:increase1m"
FEEDBACK_CORRECT: Final = "modeldeploy:feedback_correct:increase1m"
FEEDBACK_ABS_ERROR: Final = "modeldeploy:feedback_abs_error:increase1m"
FEEDBACK_SQUARED_ERROR: Final = "modeldeploy:feedback_squared_error:increase1m"
FEEDBACK_ACCURACY: Final = "modeldeploy:feedback_accuracy:1m"
FEEDBACK_ACCURACY_DROP: Final = "modeldeploy:feedback_accuracy_drop:1m"
FEEDBACK_ACCURACY_DROP_ZSCORE: Final = "modeldeploy:feedback_accuracy_drop_zscore:1m"
FEEDBACK_MAE_VARIANCE: Final = "modeldeploy:feedback_abs_error_variance:1m"
# The stable's, pooled over its versions, per ModelDeployment.
FEEDBACK_STABLE_OUTCOMES: Final = "modeldeploy:feedback_outcomes_stable:increase1m"
FEEDBACK_STABLE_ACCURACY: Final = "modeldeploy:feedback_accuracy_stable:1m"
FEEDBACK_STABLE_ROWS: Final = "modeldeploy:feedback_rows_stable:increase1m"
FEEDBACK_STABLE_MAE: Final = "modeldeploy:feedback_mae_stable:1m"
FEEDBACK_STABLE_MAE_VARIANCE: Final = "modeldeploy:feedback_abs_error_variance_stable:1m"
FEEDBACK_MAE_RISE: Final = "modeldeploy:feedback_mae_rise:1m"
FEEDBACK_MAE_RISE_ZSCORE: Final = "modeldeploy:feedback_mae_rise_zscore:1m"
CONCEPT_DRIFT_ALARMS: Final = "modeldeploy:concept_drift_alarms:increase5m"
FEEDBACK_MAE: Final = "modeldeploy:feedback_mae:1m"
FEEDBACK_RMSE: Final = "modeldeploy:feedback_rmse:1m"
# An alarm is one step of a counter: a longer window keeps it visible for any ``for``.
CONCEPT_DRIFT_WINDOW: Final = "5m"
REQUESTS_RATE: Final = "modeldeploy:requests:rate1m"
REQUEST_SERVER_ERRORS_RATIO: Final = "modeldeploy:request_server_errors:ratio_rate1m"
REQUEST_DURATION_P99: Final = "modeldeploy:request_duration_seconds:p99_1m"
REQUEST_DURATION_P50: Final = "modeldeploy:request_duration_seconds:p50_1m"

GROUP_DRIFT: Final = "modeldeploy.drift"
GROUP_PREDICTIONS: Final = "modeldeploy.predictions"
GROUP_REQUESTS: Final = "modeldeploy.requests"
GROUP_FEEDBACK: Final = "modeldeploy.feedback"

# --- Defaults ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """What the alerts compare with (a ModelDeployment's ``analysis.thresholds``).

    ``divergence_std_errors`` is 4, not the textbook 2: the z-score is looked at every rule
    interval for the whole rollout, and a 2-sigma test looked at that often fires on two
    identical models (it rolled back an identical v2 at z 2.47 under test traffic). At 4 a
    false alarm is 6e-5 per look for a normal statistic, and 1e-4 to 2e-3 at the minimum of
    30 skewed predictions a side (simulated: the standard error is itself estimated), far
    less with more; a model that learned a different relation stands far above it (the
    example's diverging variant: about 17 at 100 predictions).

    ``live_accuracy_drop`` (classifiers: the stable's live accuracy minus the candidate's) and
    ``live_error_rise`` (regressors: the candidate's live MAE over the stable's, minus 1, a
    share so that it needs no unit) are margins: a smaller gap is no reason to roll back.
    A gap beyond the margin must also stand ``LIVE_STD_ERRORS`` standard errors from 0:
    with the minimum of ``MIN_FEEDBACK_LABELS`` labels a side, two identical classifiers
    at 80% accuracy differ by 0.1 (one standard error) as often as not, so a margin alone
    would roll back an identical model about a third of the time it is looked at.
    """

    drift_psi: float = 0.25
    divergence_std_errors: float = 4.0
    error_rate: float = 0.05
    latency_p99_seconds: float = 1.0
    live_accuracy_drop: float = 0.05
    live_error_rise: float = 0.1


DEFAULT_THRESHOLDS: Final = Thresholds()
DEFAULT_INTERVAL: Final = "15s"
# How long a condition holds before its alert fires; latency is noisier and waits longer.
DEFAULT_FOR: Final = "30s"
DEFAULT_FOR_BY_ALERT: Final[Mapping[str, str]] = {
    ALERT_DRIFT: DEFAULT_FOR,
    ALERT_DIVERGENCE: DEFAULT_FOR,
    ALERT_ERROR_RATE: DEFAULT_FOR,
    ALERT_LATENCY: "1m",
    ALERT_LIVE_PERFORMANCE: DEFAULT_FOR,
    # An alarm already is a sequential test's verdict over dozens of labels: no wait.
    ALERT_CONCEPT_DRIFT: "0s",
}
# Sample sizes below which an alert does not judge (per window).
MIN_FEATURE_OBSERVATIONS: Final = 100
MIN_PREDICTIONS: Final = 30
MIN_REQUESTS: Final = 10
MIN_FEEDBACK_LABELS: Final = 30
# How far a live performance gap beyond its margin must stand from 0, in standard errors
# (one-sided: only a worse candidate counts).
LIVE_STD_ERRORS: Final = 3.0

# --- Data -------------------------------------------------------------------------------


def fold(text: str) -> str:
    """The string a YAML folded block (``>-``) holding ``text`` loads as.

    A line break between two lines that start without white space becomes a space; one next
    to a more-indented line stays. ``text`` has no empty lines and no trailing spaces.
    """
    lines = text.split("\n")
    out = lines[0]
    for prev, line in zip(lines, lines[1:], strict=False):
        out += ("\n" if prev[:1].isspace() or line[:1].isspace() else " ") + line
    return out


@dataclass(frozen=True)
class Rule:
    """A recording rule (``record``) or an alert (``alert``), with a comment for readers."""

    text: str
    record: str = ""
    alert: str = ""
    hold: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    comment: str = ""

    def __post_init__(self) -> None:
        if bool(self.record) == bool(self.alert):
            raise ValueError("a rule is either a recording rule or an alert")
        lines = self.text.split("\n")
        if lines[0][:1].isspace() or any(not x.strip() or x != x.rstrip() for x in lines):
            raise ValueError(
                f"{self.name}: expression lines must not start indented, be empty or end in spaces"
            )

    @property
    def name(self) -> str:
        return self.record or self.alert

    @property
    def expr(self) -> str:
        """The expression Prometheus evaluates."""
        return fold(self.text)

    def as_dict(self) -> dict[str, object]:
        """The rule as Prometheus reads it (in a rule file or a PrometheusRule)."""
        if self.record:
            return {"record": self.record, "expr": self.expr}
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.hold,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }


@dataclass(frozen=True)
class Group:
    """A rule group: its rules run in order at the same instant, every ``interval``."""

    name: str
    interval: str
    rules: tuple[Rule, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "interval": self.interval,
            "rules": [r.as_dict() for r in self.rules],
        }


# --- PromQL helpers ---------------------------------------------------------------------


def join(labels: Sequence[str]) -> str:
    return ", ".join(labels)


def number(value: float) -> str:
    """A threshold as PromQL and the annotations print it: 0.25, 2, 1e-05."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def series(name: str, *matchers: Mapping[str, str]) -> str:
    """``name{label="value", ...}`` with the matchers of every mapping, in order; the bare
    name without any."""
    labels = {k: v for m in matchers for k, v in m.items()}
    if not labels:
        return name
    return name + "{" + ", ".join(f"{k}={quote(v)}" for k, v in labels.items()) + "}"


# --- Annotations ------------------------------------------------------------------------


def template(expr: str) -> str:
    """A Go template action of an annotation: ``{{ expr }}``."""
    return "{{ " + expr + " }}"


VALUE2: Final = template('printf "%.2f" $value')
VALUE3: Final = template('printf "%.3f" $value')
VALUE4: Final = template('printf "%.4f" $value')
WHERE: Final = f"{template('$labels.namespace')}/{template('$labels.modeldeployment')}"
ROLE_OF: Final = template("$labels.role")

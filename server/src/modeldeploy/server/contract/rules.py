"""modeldeploy's Prometheus recording rules and alerts, as data: the one source of them.

Three things are built from here: the chart's rule file
(``charts/modeldeploy/rules/modeldeploy-rules.yaml``, written by ``modeldeploy rules``:
``chart_groups()``, the default thresholds and no selector), the PrometheusRule a
ModelDeployment owns (``modeldeployment_groups()``: the same alerts with its thresholds,
restricted to it by a label selector) and, beside them in ``promql``, the README's ad-hoc
PromQL. Metric names come from the contract; the labels every series is aggregated by are
``BY_ROLE``, in one place (``rulemodel``, whose names this module re-exports).

Standard library only, like the rest of the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from modeldeploy.server.contract import LABEL_FEATURE, classes, feedback, recording
from modeldeploy.server.contract.rulemodel import (
    ALERT_CONCEPT_DRIFT,
    ALERT_DIVERGENCE,
    ALERT_DRIFT,
    ALERT_ERROR_RATE,
    ALERT_LATENCY,
    ALERT_LIVE_PERFORMANCE,
    ALERTS,
    ALL_ALERTS,
    BY_ROLE,
    CONCEPT_DRIFT_WINDOW,
    DEFAULT_FOR,
    DEFAULT_FOR_BY_ALERT,
    DEFAULT_INTERVAL,
    DEFAULT_THRESHOLDS,
    FEATURE_BIN,
    FEATURE_BIN_FRACTION,
    FEATURE_OBSERVATIONS,
    FEATURE_PSI,
    FEATURE_PSI_MAX,
    FEATURE_PSI_TERM,
    FEATURE_REFERENCE_FRACTION,
    FEEDBACK_MAE,
    FEEDBACK_RMSE,
    FEEDBACK_ROWS,
    GROUP_DRIFT,
    GROUP_FEEDBACK,
    GROUP_PREDICTIONS,
    GROUP_REQUESTS,
    LABEL_TEST,
    LIVE_STD_ERRORS,
    MIN_FEATURE_OBSERVATIONS,
    MIN_FEEDBACK_LABELS,
    MIN_PREDICTIONS,
    MIN_REQUESTS,
    MODELDEPLOYMENT,
    NAMESPACE,
    OPT_IN_ALERTS,
    PREDICTION_CLASS,
    PREDICTION_CLASS_CHI2,
    PREDICTION_CLASS_CHI2_TERM,
    PREDICTION_CLASS_DF,
    PREDICTION_CLASS_STABLE,
    PREDICTION_CLASS_STABLE_MATCHED,
    PREDICTION_CLASS_ZSCORE,
    PREDICTION_DIVERGENCE_ZSCORE,
    PREDICTION_MEAN,
    PREDICTION_MEAN_STDERR,
    PREDICTION_SUM,
    PREDICTION_SUM_SQUARES,
    PREDICTION_VARIANCE,
    PREDICTIONS,
    REQUEST_DURATION_P50,
    REQUEST_DURATION_P99,
    REQUEST_SERVER_ERRORS_RATIO,
    REQUESTS_RATE,
    ROLE,
    ROLE_CANDIDATE,
    ROLE_OF,
    ROLE_STABLE,
    TARGET,
    TEST_CLASSES,
    TEST_MEAN,
    VALUE2,
    VALUE3,
    VALUE4,
    WHERE,
    WINDOW,
    WINDOW_SECONDS,
    Group,
    Rule,
    Thresholds,
    fold,
    join,
    number,
    quote,
    series,
    template,
)

__all__ = [
    "ALERTS",
    "ALERT_CONCEPT_DRIFT",
    "ALERT_LIVE_PERFORMANCE",
    "ALL_ALERTS",
    "LIVE_STD_ERRORS",
    "MIN_FEEDBACK_LABELS",
    "OPT_IN_ALERTS",
    "ALERT_DIVERGENCE",
    "ALERT_DRIFT",
    "ALERT_ERROR_RATE",
    "ALERT_LATENCY",
    "BY_ROLE",
    "DEFAULT_FOR",
    "DEFAULT_FOR_BY_ALERT",
    "DEFAULT_INTERVAL",
    "DEFAULT_THRESHOLDS",
    "FEATURE_BIN",
    "FEATURE_BIN_FRACTION",
    "FEATURE_OBSERVATIONS",
    "FEATURE_PSI",
    "FEATURE_PSI_MAX",
    "FEATURE_PSI_TERM",
    "FEATURE_REFERENCE_FRACTION",
    "FEEDBACK_MAE",
    "FEEDBACK_RMSE",
    "FEEDBACK_ROWS",
    "GROUP_DRIFT",
    "GROUP_FEEDBACK",
    "GROUP_PREDICTIONS",
    "GROUP_REQUESTS",
    "LABEL_TEST",
    "MIN_FEATURE_OBSERVATIONS",
    "MIN_PREDICTIONS",
    "MIN_REQUESTS",
    "MODELDEPLOYMENT",
    "NAMESPACE",
    "PREDICTIONS",
    "PREDICTION_CLASS",
    "PREDICTION_CLASS_CHI2",
    "PREDICTION_CLASS_CHI2_TERM",
    "PREDICTION_CLASS_DF",
    "PREDICTION_CLASS_STABLE",
    "PREDICTION_CLASS_STABLE_MATCHED",
    "PREDICTION_CLASS_ZSCORE",
    "PREDICTION_DIVERGENCE_ZSCORE",
    "PREDICTION_MEAN",
    "PREDICTION_MEAN_STDERR",
    "PREDICTION_SUM",
    "PREDICTION_SUM_SQUARES",
    "PREDICTION_VARIANCE",
    "REQUESTS_RATE",
    "REQUEST_DURATION_P50",
    "REQUEST_DURATION_P99",
    "REQUEST_SERVER_ERRORS_RATIO",
    "ROLE",
    "ROLE_CANDIDATE",
    "ROLE_STABLE",
    "TARGET",
    "TEST_CLASSES",
    "TEST_MEAN",
    "WINDOW",
    "WINDOW_SECONDS",
    "Group",
    "Rule",
    "Thresholds",
    "fold",
    "join",
    "number",
    "quote",
    "series",
    "CHART_FILE_COMMENT",
    "alerts",
    "chart_groups",
    "modeldeployment_groups",
    "modeldeployment_selector",
]


# --- Alerts -----------------------------------------------------------------------------


def _tested(condition: str, test: str) -> str:
    """``condition`` with the label saying which test it is."""
    return f'label_replace(\n  {condition},\n  "{LABEL_TEST}", "{test}", "", ""\n)'


def alerts(
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    hold: str | None = None,
    selector: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Rule]:
    """Every alert by name (``ALL_ALERTS``), in the order of the chart's groups.

    ``hold`` is every alert's ``for`` (default: each alert's own, ``DEFAULT_FOR_BY_ALERT``);
    ``selector`` restricts every series the alerts read (a ModelDeployment's namespace and
    name); ``labels`` are added to the alerts' own labels.
    """
    t, sel, extra = thresholds, selector or {}, dict(labels or {})
    on_role = f"on ({join(BY_ROLE)})"

    def alert(
        name: str, severity: str, text: str, annotations: dict[str, str], comment: str
    ) -> Rule:
        return Rule(
            alert=name,
            text=text,
            hold=hold or DEFAULT_FOR_BY_ALERT[name],
            labels={"severity": severity, **extra},
            annotations=annotations,
            comment=comment,
        )

    psi, z = number(t.drift_psi), number(t.divergence_std_errors)
    errors, latency = number(t.error_rate), number(t.latency_p99_seconds)
    requests = f"{series(REQUESTS_RATE, sel)} * {WINDOW_SECONDS} >= {MIN_REQUESTS}"
    return {
        ALERT_DRIFT: alert(
            ALERT_DRIFT,
            "warning",
            f"{series(FEATURE_PSI, sel)} > {psi}\n"
            f"and on ({join((*BY_ROLE, LABEL_FEATURE))})\n"
            f"{series(FEATURE_OBSERVATIONS, sel)} >= {MIN_FEATURE_OBSERVATIONS}",
            {
                "summary": f"Input drift on feature {template('$labels.feature')} of {WHERE} "
                f"({ROLE_OF})",
                "description": f"PSI {VALUE4} over the last minute exceeds {psi}.",
                "psi": VALUE4,
            },
            "Input drift: a feature's live distribution moved away from its reference, for "
            f"the candidate or the stable. Needs {MIN_FEATURE_OBSERVATIONS} observations in "
            "the window: the PSI of a small sample is noisy (about chi-square(bins - 1) / n "
            "without any drift).",
        ),
        ALERT_DIVERGENCE: alert(
            ALERT_DIVERGENCE,
            "warning",
            f"(\n{_tested(f'abs({series(PREDICTION_DIVERGENCE_ZSCORE, sel)}) > {z}', TEST_MEAN)}"
            f"\nor\n{_tested(f'{series(PREDICTION_CLASS_ZSCORE, sel)} > {z}', TEST_CLASSES)}\n)\n"
            f"and {on_role}\n"
            f"{series(PREDICTIONS, sel, {ROLE: ROLE_CANDIDATE})} >= {MIN_PREDICTIONS}\n"
            f"and on ({join(TARGET)})\n"
            f"{series(PREDICTIONS, sel, {ROLE: ROLE_STABLE})} >= {MIN_PREDICTIONS}",
            {
                "summary": f"Predictions of the candidate of {WHERE} diverge from the stable's",
                "description": template(f'if eq $labels.{LABEL_TEST} "{TEST_CLASSES}"')
                + f"Predicted-class counts differ by {VALUE2} standard errors, the "
                f"Wilson-Hilferty z of their chi-square (threshold {z})."
                + template("else")
                + f"Mean difference of {VALUE2} standard errors (threshold {z})."
                + template("end"),
                "zscore": VALUE4,
                "test": template(f"$labels.{LABEL_TEST}"),
            },
            "Prediction divergence, by either of two tests, each its own alert (label "
            f"{LABEL_TEST}): {TEST_MEAN}, the candidate's mean prediction differs from the "
            f"stable's by more than {z} standard errors of the difference; {TEST_CLASSES} (any "
            "classifier), its predicted-class counts differ from the stable's by a 2xK "
            f"chi-square whose Wilson-Hilferty z exceeds {z}. Both need {MIN_PREDICTIONS} "
            "predictions of each side in the window, so a candidate with a handful of "
            "identical answers (zero variance, hence a tiny standard error) does not fire.",
        ),
        ALERT_ERROR_RATE: alert(
            ALERT_ERROR_RATE,
            "critical",
            f"{series(REQUEST_SERVER_ERRORS_RATIO, sel)} > {errors}\nand {on_role}\n{requests}",
            {
                "summary": f"Server errors of {WHERE} ({ROLE_OF})",
                "description": f"{template('$value | humanizePercentage')} of the requests in "
                "the last minute failed on the server (threshold "
                f"{number(t.error_rate * 100)}%).",
            },
            f"Server errors above {number(t.error_rate * 100)}% of at least {MIN_REQUESTS} "
            "requests in the window.",
        ),
        ALERT_LATENCY: alert(
            ALERT_LATENCY,
            "warning",
            f"{series(REQUEST_DURATION_P99, sel)} > {latency}\nand {on_role}\n{requests}",
            {
                "summary": f"Slow answers from {WHERE} ({ROLE_OF})",
                "description": f"p99 latency {VALUE3}s over the last minute exceeds {latency}s.",
            },
            f"p99 latency above {latency} second{'' if t.latency_p99_seconds == 1 else 's'}, "
            f"with at least {MIN_REQUESTS} requests in the window.",
        ),
        **feedback.alerts(t, sel, alert),
    }


# --- Rule sets --------------------------------------------------------------------------


def chart_groups(
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    interval: str = DEFAULT_INTERVAL,
    hold: str | None = None,
) -> list[Group]:
    """The chart's rule file: the recording rules, each alert in the group it reads.

    Rules of one group run in order at the same instant, so an alert always sees the values
    recorded in the same evaluation.
    """
    a = alerts(thresholds, hold=hold)
    return [
        Group(GROUP_DRIFT, interval, (*recording.drift_records(), a[ALERT_DRIFT])),
        Group(
            GROUP_PREDICTIONS,
            interval,
            (*recording.prediction_records(), *classes.class_records(), a[ALERT_DIVERGENCE]),
        ),
        Group(
            GROUP_REQUESTS,
            interval,
            (*recording.request_records(), a[ALERT_ERROR_RATE], a[ALERT_LATENCY]),
        ),
        Group(
            GROUP_FEEDBACK,
            interval,
            (*feedback.feedback_records(), a[ALERT_LIVE_PERFORMANCE], a[ALERT_CONCEPT_DRIFT]),
        ),
    ]


def modeldeployment_selector(namespace: str, name: str) -> dict[str, str]:
    """The label matchers of one ModelDeployment's series."""
    return {NAMESPACE: namespace, MODELDEPLOYMENT: name}


def modeldeployment_groups(
    namespace: str,
    name: str,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    interval: str = DEFAULT_INTERVAL,
    hold: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[Group]:
    """The alerts of one ModelDeployment: the chart's, with its thresholds and selector.

    They read the series the chart's recording rules record (recording them again would
    write the same series twice), so they act beside the chart's alerts.
    """
    selected = alerts(
        thresholds, hold=hold, selector=modeldeployment_selector(namespace, name), labels=labels
    )
    return [Group(f"modeldeploy.{namespace}.{name}", interval, tuple(selected.values()))]


CHART_FILE_COMMENT: Final = (
    "Prometheus recording rules and alerts for modeldeploy's model servers.",
    "",
    "A plain rule file (`rule_files:` of a Prometheus without the Prometheus Operator); the "
    "chart wraps the same groups in a PrometheusRule when the monitoring.coreos.com API "
    "exists.",
    "",
    "Series come from the model server (names in modeldeploy.server.contract) and carry the "
    "target labels the scrape configuration adds from the pod: namespace, pod, "
    "modeldeployment (pod label modeldeploy.io/name), slot (modeldeploy.io/slot) and role "
    "(modeldeploy.io/role: stable | candidate); version is the server's own label. "
    "Everything is aggregated by "
    f"({join(BY_ROLE)}) so alerts carry exactly the labels the operator matches on, and "
    "sums over pods and replicas stay correct because the inputs are counters.",
    "",
    f"Windows are {WINDOW} so a rollout reacts within a minute or two (concept drift alarms, "
    f"one-off steps of a counter, are counted over {CONCEPT_DRIFT_WINDOW}). Each alert sits in the "
    "group of the recording rules it reads: rules of one group run in order at the same "
    "instant, so an alert always sees the values recorded in the same evaluation.",
)

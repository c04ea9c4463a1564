"""The recording rules: what the chart's rule file records per (namespace, modeldeployment,
role, version), from the counters the server exports. The alerts (``rules``) read these series.
"""

from __future__ import annotations

from modeldeploy.server.contract import (
    LABEL_BIN,
    LABEL_FEATURE,
    LABEL_OUTCOME,
    METRIC_FEATURE_BIN,
    METRIC_FEATURE_REFERENCE_FRACTION,
    METRIC_PREDICTION_SUM,
    METRIC_PREDICTION_SUM_SQUARES,
    METRIC_PREDICTIONS,
    METRIC_REQUEST_DURATION,
    METRIC_REQUESTS,
)
from modeldeploy.server.contract.rulemodel import (
    BY_ROLE,
    FEATURE_BIN,
    FEATURE_BIN_FRACTION,
    FEATURE_OBSERVATIONS,
    FEATURE_PSI,
    FEATURE_PSI_MAX,
    FEATURE_PSI_TERM,
    FEATURE_REFERENCE_FRACTION,
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
    ROLE_STABLE,
    TARGET,
    WINDOW,
    Rule,
    join,
    series,
)


def drift_records() -> list[Rule]:
    by_bin = join((*BY_ROLE, LABEL_FEATURE, LABEL_BIN))
    on_bin = f"on ({by_bin})"
    return [
        Rule(
            record=FEATURE_BIN,
            comment="Live observations per reference bin over the window.",
            text=f"sum by ({by_bin})\n(increase({METRIC_FEATURE_BIN}[{WINDOW}]))",
        ),
        Rule(
            record=FEATURE_OBSERVATIONS,
            comment="Observations per feature over the window (the sample size of the PSI).",
            text=f"sum without ({LABEL_BIN}) ({FEATURE_BIN})",
        ),
        Rule(
            record=FEATURE_REFERENCE_FRACTION,
            comment="The reference fraction of each bin: a constant every replica exports; "
            "max collapses the replicas.",
            text=f"max by ({by_bin})\n({METRIC_FEATURE_REFERENCE_FRACTION})",
        ),
        Rule(
            record=FEATURE_BIN_FRACTION,
            comment="Live fraction per bin. A bin without a series yet counts as 0, as long "
            "as the feature saw traffic in the window.",
            text=f"(\n  {FEATURE_BIN}\n  / ignoring ({LABEL_BIN}) group_left ()\n"
            f"  ({FEATURE_OBSERVATIONS} > 0)\n)\nor\n"
            f"(\n  {FEATURE_REFERENCE_FRACTION} * 0\n  and ignoring ({LABEL_BIN})\n"
            f"  ({FEATURE_OBSERVATIONS} > 0)\n)",
        ),
        Rule(
            record=FEATURE_PSI_TERM,
            comment="Population stability index per bin: (a - e) * ln(a / e) with 1e-4 added "
            "to both fractions, so an empty bin counts as rare rather than impossible "
            "(the same formula as the server's /drift report).",
            text=f"(\n  {FEATURE_BIN_FRACTION}\n  - {on_bin}\n  {FEATURE_REFERENCE_FRACTION}\n)"
            f"\n*\nln(\n  ({FEATURE_BIN_FRACTION} + 1e-4)\n  / {on_bin}\n"
            f"  ({FEATURE_REFERENCE_FRACTION} + 1e-4)\n)",
        ),
        Rule(
            record=FEATURE_PSI,
            comment="PSI per feature: the sum of its bins' terms.",
            text=f"sum without ({LABEL_BIN}) ({FEATURE_PSI_TERM})",
        ),
        Rule(
            record=FEATURE_PSI_MAX,
            comment="The largest PSI over the features of a role (dashboards, quick looks).",
            text=f"max without ({LABEL_FEATURE}) ({FEATURE_PSI})",
        ),
    ]


def prediction_records() -> list[Rule]:
    by = join(BY_ROLE)
    target = join(TARGET)
    on_target = f"on ({target}) group_left ()"
    cand, stable = {ROLE: ROLE_CANDIDATE}, {ROLE: ROLE_STABLE}

    def increase(record: str, metric: str, comment: str) -> Rule:
        return Rule(
            record=record, text=f"sum by ({by})\n(increase({metric}[{WINDOW}]))", comment=comment
        )

    return [
        increase(
            PREDICTIONS,
            METRIC_PREDICTIONS,
            "Predictions over the window (rows the model answered), per role.",
        ),
        increase(
            PREDICTION_SUM, METRIC_PREDICTION_SUM, "Sum of the predicted values over the window."
        ),
        increase(
            PREDICTION_SUM_SQUARES,
            METRIC_PREDICTION_SUM_SQUARES,
            "Sum of their squares (for the variance).",
        ),
        Rule(
            record=PREDICTION_MEAN,
            comment="Mean of the prediction (the positive-class probability for a classifier).",
            text=f"{PREDICTION_SUM}\n/ ({PREDICTIONS} > 0)",
        ),
        Rule(
            record=PREDICTION_VARIANCE,
            comment="Variance as E[x^2] - E[x]^2, floored at 0 against rounding.",
            text=f"clamp_min(\n  {PREDICTION_SUM_SQUARES}\n  / ({PREDICTIONS} > 0)\n"
            f"  - {PREDICTION_MEAN} ^ 2,\n  0\n)",
        ),
        Rule(
            record=PREDICTION_MEAN_STDERR,
            comment="Standard error of the mean: sqrt(variance / n).",
            text=f"sqrt({PREDICTION_VARIANCE} / {PREDICTIONS})",
        ),
        Rule(
            record=PREDICTION_DIVERGENCE_ZSCORE,
            comment="Candidate mean minus stable mean, in standard errors of the difference "
            "(the two standard errors add in quadrature). Carries the candidate's "
            "labels, its version included. The stable side ignores the version: right after "
            "a promotion two stable versions are in the window, whose pooled mean is "
            "compared, with the larger standard error (never a sharper test).",
            text=f"(\n  {series(PREDICTION_MEAN, cand)}\n  - {on_target}\n"
            f"  (\n    sum by ({target}) ({series(PREDICTION_SUM, stable)})\n"
            f"    / sum by ({target}) ({series(PREDICTIONS, stable)} > 0)\n  )\n)\n/\nsqrt(\n"
            f"  {series(PREDICTION_MEAN_STDERR, cand)} ^ 2\n  + {on_target}\n"
            f"  max by ({target}) ({series(PREDICTION_MEAN_STDERR, stable)}) ^ 2\n)",
        ),
    ]


def request_records() -> list[Rule]:
    by = join(BY_ROLE)
    rate = f"[{WINDOW}]"
    buckets = f"{METRIC_REQUEST_DURATION}_bucket"

    def quantile(record: str, q: str, comment: str) -> Rule:
        return Rule(
            record=record,
            text=f"histogram_quantile({q},\n  sum by ({by}, le)\n  (rate({buckets}{rate})))",
            comment=comment,
        )

    return [
        Rule(
            record=REQUESTS_RATE,
            comment="Requests per second over the window, any outcome.",
            text=f"sum by ({by}) (rate({METRIC_REQUESTS}{rate}))",
        ),
        Rule(
            record=REQUEST_SERVER_ERRORS_RATIO,
            comment="Share of requests that failed on the server's side (client errors are "
            "the caller's).",
            text=f"(\n  sum by ({by})\n"
            f"  (rate({series(METRIC_REQUESTS, {LABEL_OUTCOME: 'server_error'})}{rate}))"
            f"\n  or\n  {REQUESTS_RATE} * 0\n)\n/ ({REQUESTS_RATE} > 0)",
        ),
        quantile(
            REQUEST_DURATION_P99,
            "0.99",
            "Latency quantiles over the window, from the histogram summed over pods.",
        ),
        quantile(REQUEST_DURATION_P50, "0.5", ""),
    ]

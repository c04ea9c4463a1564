"""Live performance from ``/feedback`` labels, as recording rules and the two alerts on them.

Labels are counted when they arrive, so every window is "the labels that arrived in the last
minute", whatever the age of the predictions they label. Per role and version the group
records the labelled rows, a classifier's outcomes (``correct``/``incorrect``) and accuracy,
and the MAE, RMSE and the variance of the absolute error; then, as ``ModelPredictionDivergence``
does with predictions, the candidate against the stable of the same ModelDeployment (matched
on ``namespace, modeldeployment`` only, pooled over the stable's versions, so that right after
a promotion the two stable versions in the window count as one; the result carries the
candidate's labels, its version included):

- classifiers: ``drop = accuracy(stable) - accuracy(candidate)`` and its z-score,
  ``drop / sqrt(a_c (1 - a_c) / n_c + a_s (1 - a_s) / n_s)`` (the normal approximation
  of two proportions);
- regressors (no outcomes: ``modeldeploy_feedback_total`` stays 0): the relative rise of the
  MAE, ``mae(candidate) / mae(stable) - 1``, and the z-score of the MAE difference,
  ``(mae_c - mae_s) / sqrt(var_c / n_c + var_s / n_s)`` with ``var = E[e^2] - E[|e|]^2``
  (the squared-error counter gives ``E[e^2]``).

``ModelLivePerformanceDrop`` fires when the gap exceeds its margin (``Thresholds``) and
stands ``LIVE_STD_ERRORS`` standard errors from 0, with ``MIN_FEEDBACK_LABELS`` labels of
each side in the window; ``ModelConceptDrift`` when a concept drift detector of the server
(``changepoint.py``) raised an alarm within ``CONCEPT_DRIFT_WINDOW``, for any role.

Standard library only, like the rest of the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from modeldeploy.server.contract import (
    LABEL_DETECTOR,
    LABEL_OUTCOME,
    METRIC_CONCEPT_DRIFT_ALARMS,
    METRIC_FEEDBACK,
    METRIC_FEEDBACK_ABS_ERROR,
    METRIC_FEEDBACK_ROWS,
    METRIC_FEEDBACK_SQUARED_ERROR,
)
from modeldeploy.server.contract.rulemodel import (
    ALERT_CONCEPT_DRIFT,
    ALERT_LIVE_PERFORMANCE,
    BY_ROLE,
    CONCEPT_DRIFT_ALARMS,
    CONCEPT_DRIFT_WINDOW,
    FEEDBACK_ABS_ERROR,
    FEEDBACK_ACCURACY,
    FEEDBACK_ACCURACY_DROP,
    FEEDBACK_ACCURACY_DROP_ZSCORE,
    FEEDBACK_CORRECT,
    FEEDBACK_MAE,
    FEEDBACK_MAE_RISE,
    FEEDBACK_MAE_RISE_ZSCORE,
    FEEDBACK_MAE_VARIANCE,
    FEEDBACK_OUTCOMES,
    FEEDBACK_RMSE,
    FEEDBACK_ROWS,
    FEEDBACK_SQUARED_ERROR,
    FEEDBACK_STABLE_ACCURACY,
    FEEDBACK_STABLE_MAE,
    FEEDBACK_STABLE_MAE_VARIANCE,
    FEEDBACK_STABLE_OUTCOMES,
    FEEDBACK_STABLE_ROWS,
    LABEL_TEST,
    LIVE_STD_ERRORS,
    MIN_FEEDBACK_LABELS,
    ROLE,
    ROLE_CANDIDATE,
    ROLE_OF,
    ROLE_STABLE,
    TARGET,
    VALUE3,
    WHERE,
    WINDOW,
    Rule,
    Thresholds,
    join,
    number,
    series,
    template,
)

# The label value of each of ModelLivePerformanceDrop's two tests.
TEST_ACCURACY = "accuracy"
TEST_MAE = "mae"


def _per_role() -> list[Rule]:
    by = join(BY_ROLE)

    def increase(record: str, metric: str, comment: str) -> Rule:
        return Rule(
            record=record, text=f"sum by ({by})\n(increase({metric}[{WINDOW}]))", comment=comment
        )

    rows = f"({FEEDBACK_ROWS} > 0)"
    return [
        increase(FEEDBACK_ROWS, METRIC_FEEDBACK_ROWS, "Labelled rows over the window, per role."),
        increase(
            FEEDBACK_OUTCOMES,
            METRIC_FEEDBACK,
            "A classifier's labelled outcomes, correct or not (a regressor's stay 0).",
        ),
        increase(
            FEEDBACK_CORRECT,
            series(METRIC_FEEDBACK, {LABEL_OUTCOME: "correct"}),
            "The correct ones.",
        ),
        increase(
            FEEDBACK_ABS_ERROR, METRIC_FEEDBACK_ABS_ERROR, "Sum of |label - predicted value|."
        ),
        increase(
            FEEDBACK_SQUARED_ERROR,
            METRIC_FEEDBACK_SQUARED_ERROR,
            "Sum of (label - predicted value)^2.",
        ),
        Rule(
            record=FEEDBACK_ACCURACY,
            comment="Live accuracy of a classifier: correct / labelled outcomes.",
            text=f"{FEEDBACK_CORRECT}\n/ ({FEEDBACK_OUTCOMES} > 0)",
        ),
        Rule(
            record=FEEDBACK_MAE,
            comment="Mean absolute error of the labelled rows (of a classifier's "
            "positive-class probability, for a classifier).",
            text=f"{FEEDBACK_ABS_ERROR}\n/ {rows}",
        ),
        Rule(
            record=FEEDBACK_RMSE,
            comment="Root mean squared error (squared, a classifier's Brier score).",
            text=f"sqrt({FEEDBACK_SQUARED_ERROR}\n/ {rows})",
        ),
        Rule(
            record=FEEDBACK_MAE_VARIANCE,
            comment="Variance of the absolute error, E[e^2] - E[|e|]^2, floored at 0 against "
            "rounding (the MAE's standard error is sqrt(variance / rows)).",
            text=f"clamp_min(\n  {FEEDBACK_SQUARED_ERROR}\n  / {rows}\n"
            f"  - {FEEDBACK_MAE} ^ 2,\n  0\n)",
        ),
    ]


def _stable_pooled() -> list[Rule]:
    target = join(TARGET)
    stable = {ROLE: ROLE_STABLE}

    def pooled(name: str) -> str:
        return f"sum by ({target}) ({series(name, stable)})"

    def pooled_ratio(
        total: str, counted: str, ratio: str, part: str, what: tuple[str, str]
    ) -> list[Rule]:
        """The stable's count (pooled over its versions: two right after a promotion), and
        a ratio over it."""
        return [
            Rule(record=total, comment=f"The stable's {what[0]}, pooled.", text=pooled(counted)),
            Rule(
                record=ratio,
                comment=f"The stable's pooled {what[1]}.",
                text=f"{pooled(part)}\n/ ({total} > 0)",
            ),
        ]

    return [
        *pooled_ratio(
            FEEDBACK_STABLE_OUTCOMES,
            FEEDBACK_OUTCOMES,
            FEEDBACK_STABLE_ACCURACY,
            FEEDBACK_CORRECT,
            ("labelled outcomes", "accuracy"),
        ),
        *pooled_ratio(
            FEEDBACK_STABLE_ROWS,
            FEEDBACK_ROWS,
            FEEDBACK_STABLE_MAE,
            FEEDBACK_ABS_ERROR,
            ("labelled rows", "MAE"),
        ),
        Rule(
            record=FEEDBACK_STABLE_MAE_VARIANCE,
            comment="The variance of the stable's pooled absolute error.",
            text=f"clamp_min(\n  {pooled(FEEDBACK_SQUARED_ERROR)}\n  / ({FEEDBACK_STABLE_ROWS} > 0)"
            f"\n  - {FEEDBACK_STABLE_MAE} ^ 2,\n  0\n)",
        ),
    ]


def _comparisons() -> list[Rule]:
    on_target = f"on ({join(TARGET)})"
    cand = {ROLE: ROLE_CANDIDATE}
    acc, mae = series(FEEDBACK_ACCURACY, cand), series(FEEDBACK_MAE, cand)
    classifier = f"unless on ({join(BY_ROLE)})\n{FEEDBACK_OUTCOMES} > 0"
    return [
        Rule(
            record=FEEDBACK_ACCURACY_DROP,
            comment="How much less accurate the candidate is than the stable (negative: more "
            "accurate), with the candidate's labels.",
            text=f"{FEEDBACK_STABLE_ACCURACY}\n- {on_target} group_right ()\n{acc}",
        ),
        Rule(
            record=FEEDBACK_ACCURACY_DROP_ZSCORE,
            comment="The drop in standard errors of the difference of two proportions.",
            text=f"{FEEDBACK_ACCURACY_DROP}\n/\nsqrt(\n"
            f"  {acc} * (1 - {acc})\n  / {series(FEEDBACK_OUTCOMES, cand)}\n"
            f"  + {on_target} group_left ()\n"
            f"  (\n    {FEEDBACK_STABLE_ACCURACY} * (1 - {FEEDBACK_STABLE_ACCURACY})\n"
            f"    / {FEEDBACK_STABLE_OUTCOMES}\n  )\n)",
        ),
        Rule(
            record=FEEDBACK_MAE_RISE,
            comment="A regressor's live MAE over the stable's, minus 1 (0.1: 10% worse). A "
            "classifier is judged by its accuracy instead.",
            text=f"(\n  {mae}\n  / {on_target} group_left ()\n  ({FEEDBACK_STABLE_MAE} > 0)\n"
            f"  - 1\n)\n{classifier}",
        ),
        Rule(
            record=FEEDBACK_MAE_RISE_ZSCORE,
            comment="The MAE difference in standard errors of the difference.",
            text=f"(\n  {mae}\n  - {on_target} group_left ()\n  {FEEDBACK_STABLE_MAE}\n)\n/\n"
            f"sqrt(\n  {series(FEEDBACK_MAE_VARIANCE, cand)}\n"
            f"  / {series(FEEDBACK_ROWS, cand)}\n  + {on_target} group_left ()\n"
            f"  ({FEEDBACK_STABLE_MAE_VARIANCE} / {FEEDBACK_STABLE_ROWS})\n)\n{classifier}",
        ),
    ]


def feedback_records() -> list[Rule]:
    """The feedback group's recording rules, in the order they must run."""
    concept = Rule(
        record=CONCEPT_DRIFT_ALARMS,
        comment=f"Concept drift alarms raised per detector over {CONCEPT_DRIFT_WINDOW}: an "
        "alarm is one step of a counter, and the longer window keeps it in sight for any "
        "`for` up to a few minutes.",
        text=f"sum by ({join((*BY_ROLE, LABEL_DETECTOR))})\n"
        f"(increase({METRIC_CONCEPT_DRIFT_ALARMS}[{CONCEPT_DRIFT_WINDOW}]))",
    )
    return [*_per_role(), *_stable_pooled(), *_comparisons(), concept]


def _tested(condition: str, test: str) -> str:
    return f'label_replace(\n  {condition},\n  "{LABEL_TEST}", "{test}", "", ""\n)'


def live_performance_text(t: Thresholds, sel: Mapping[str, str]) -> str:
    """``ModelLivePerformanceDrop``'s expression: either test beyond its margin and
    ``LIVE_STD_ERRORS`` from 0, with enough labels on both sides."""
    z, n = number(LIVE_STD_ERRORS), MIN_FEEDBACK_LABELS
    accuracy = (
        f"{series(FEEDBACK_ACCURACY_DROP, sel)} > {number(t.live_accuracy_drop)}\n"
        f"  and\n  {series(FEEDBACK_ACCURACY_DROP_ZSCORE, sel)} > {z}"
    )
    error = (
        f"{series(FEEDBACK_MAE_RISE, sel)} > {number(t.live_error_rise)}\n"
        f"  and\n  {series(FEEDBACK_MAE_RISE_ZSCORE, sel)} > {z}"
    )
    return (
        f"(\n{_tested(accuracy, TEST_ACCURACY)}\nor\n{_tested(error, TEST_MAE)}\n)\n"
        f"and on ({join(BY_ROLE)})\n"
        f"{series(FEEDBACK_ROWS, sel, {ROLE: ROLE_CANDIDATE})} >= {n}\n"
        f"and on ({join(TARGET)})\n"
        f"{series(FEEDBACK_STABLE_ROWS, sel)} >= {n}"
    )


def concept_drift_text(sel: Mapping[str, str]) -> str:
    """``ModelConceptDrift``'s expression: a detector's alarms rose in the window."""
    return f"{series(CONCEPT_DRIFT_ALARMS, sel)} > 0"


# (name, severity, expression, annotations, comment) -> the alert.
Build = Callable[[str, str, str, dict[str, str], str], Rule]


def alerts(t: Thresholds, sel: Mapping[str, str], alert: Build) -> dict[str, Rule]:
    """The opt-in alerts on /feedback labels, built by ``rules.alerts``'s ``alert``."""
    drop, rise = number(t.live_accuracy_drop), number(t.live_error_rise * 100)
    z, n = number(LIVE_STD_ERRORS), MIN_FEEDBACK_LABELS
    test = f"$labels.{LABEL_TEST}"
    return {
        ALERT_LIVE_PERFORMANCE: alert(
            ALERT_LIVE_PERFORMANCE,
            "warning",
            live_performance_text(t, sel),
            {
                "summary": f"Live performance of the candidate of {WHERE} is worse than the "
                "stable's",
                "description": template(f'if eq {test} "{TEST_ACCURACY}"')
                + f"Accuracy on the labels of the last minute is {VALUE3} lower than the "
                f"stable's (margin {drop})."
                + template("else")
                + "MAE on the labels of the last minute is "
                f"{template('$value | humanizePercentage')} higher than the stable's "
                f"(margin {rise}%)." + template("end"),
                "test": template(test),
            },
            f"Live performance from /feedback labels, by the test that fits the model (label "
            f"{LABEL_TEST}): {TEST_ACCURACY}, a classifier's accuracy lower than the "
            f"stable's by more than {drop}; {TEST_MAE}, a regressor's MAE higher by "
            f"more than {rise}%. Either gap must also stand {z} "
            f"standard errors from 0, with {n} labels of each side in the window.",
        ),
        ALERT_CONCEPT_DRIFT: alert(
            ALERT_CONCEPT_DRIFT,
            "warning",
            concept_drift_text(sel),
            {
                "summary": f"Concept drift on the labelled errors of {WHERE} ({ROLE_OF})",
                "description": f"The {template('$labels.detector')} detector raised "
                f"{template('$value')} alarm(s) in the last {CONCEPT_DRIFT_WINDOW}.",
            },
            "Concept drift: a detector of the server (CUSUM, Page-Hinkley) found the error "
            "of the labelled predictions rising, for the candidate or the stable.",
        ),
    }

"""The class test of prediction divergence: the candidate's predicted-class counts against the
stable's, as recording rules (``ModelPredictionDivergence`` reads the last one).

Per ModelDeployment, over the window, with ``C_k`` the candidate's predictions of class ``k``
(per version) and ``S_k`` the stable's (pooled over its versions, as the mean test pools
them), ``nC = sum C_k`` and ``nS = sum S_k``, the 2xK contingency chi-square over the classes
seen (``C_k + S_k > 0``) is::

    chi2 = sum_k (C_k nS - S_k nC)^2 / (nC nS (C_k + S_k)),   df = classes seen - 1

and its Wilson-Hilferty transform ``z = ((chi2/df)^(1/3) - (1 - 2/(9 df))) / sqrt(2/(9 df))``
is approximately standard normal under the null, so the one threshold
``divergenceStdErrors`` judges both tests in the same unit. At ``z = 4`` the exact chi-square
tail is 1.4e-5 (1 degree of freedom) to 2.9e-5 (30): the transform errs on the safe side,
beside the mean test's two-sided 6.3e-5.

PromQL has no outer join: a class only the stable predicted has no candidate series to hang
its cell on (and a candidate version cannot be crossed with the stable's classes, which would
be many-to-many). Such a class has ``C_k = 0`` and its term is ``S_k nC / nS``, so those terms
sum to ``(nS - M) nC / nS`` with ``M`` the stable's predictions of the classes the candidate
has series for; the degrees of freedom count them the same way. Every classifier exports all
of its classes from the start (0 until predicted), so one side lacks a class only when the two
models' classes differ, and both cases are covered.

Binary classifiers are left to the mean test: the z-score is recorded only for a candidate
with more than two classes, or a table of more than two classes seen (the two models' classes
differ, e.g. renamed labels). A binary classifier's two class counts are the share of scores
above its decision threshold, a coarser view of the mean score the mean test already judges,
and under the null they would add about as many false alarms as the mean test has: for a
typical skewed classifier (1.6% positives) at 30 predictions beside 300, the class test alone
false-alarms 1.5e-3 per look against the mean test's 2e-3, which nearly doubles the alert's
rate while catching little the mean test misses (``tests/rules/test_rules_classes_null.py``
measures it). For multiclass models the same simulation finds 3e-6 to 6.4e-5 per look under
the null while every class is expected at least three times in the candidate's window; a
class expected less than once (1% of 30 predictions) raises it to about 5.5e-4, the
chi-square's known weak spot with tiny expected counts.

Standard library only, like the rest of the contract.
"""

from __future__ import annotations

from modeldeploy.server.contract import LABEL_CLASS, METRIC_PREDICTION_CLASS
from modeldeploy.server.contract.rulemodel import (
    BY_ROLE,
    PREDICTION_CLASS,
    PREDICTION_CLASS_CHI2,
    PREDICTION_CLASS_CHI2_TERM,
    PREDICTION_CLASS_DF,
    PREDICTION_CLASS_STABLE,
    PREDICTION_CLASS_STABLE_MATCHED,
    PREDICTION_CLASS_ZSCORE,
    ROLE,
    ROLE_CANDIDATE,
    ROLE_STABLE,
    TARGET,
    WINDOW,
    Rule,
    join,
    series,
)


def class_records() -> list[Rule]:
    """The recording rules of the class test, in evaluation order."""
    target = join(TARGET)
    on_target = f"on ({target}) group_left ()"
    cand = series(PREDICTION_CLASS, {ROLE: ROLE_CANDIDATE})
    n_cand = f"sum without ({LABEL_CLASS}) ({cand})"
    n_stable = f"sum by ({target}) ({PREDICTION_CLASS_STABLE})"
    return [
        Rule(
            record=PREDICTION_CLASS,
            comment="Predictions per class over the window, per role (every classifier, "
            "string classes included; a regressor has no class series).",
            text=f"sum by ({join((*BY_ROLE, LABEL_CLASS))})\n"
            f"(increase({METRIC_PREDICTION_CLASS}[{WINDOW}]))",
        ),
        Rule(
            record=PREDICTION_CLASS_STABLE,
            comment="The stable's predictions per class, its versions pooled (S_k).",
            text=f"sum by ({join((*TARGET, LABEL_CLASS))})\n"
            f"({series(PREDICTION_CLASS, {ROLE: ROLE_STABLE})})",
        ),
        Rule(
            record=PREDICTION_CLASS_STABLE_MATCHED,
            comment="S_k on each of the candidate's class series (0 for a class the stable "
            "does not have), so the two rows of the table line up per candidate version.",
            text=f"{cand} * 0\n+ on ({join((*TARGET, LABEL_CLASS))}) group_left ()\n"
            f"{PREDICTION_CLASS_STABLE}\nor\n{cand} * 0",
        ),
        Rule(
            record=PREDICTION_CLASS_CHI2_TERM,
            comment="Chi-square term per class the candidate has: (C_k nS - S_k nC)^2 / "
            "(nC nS (C_k + S_k)), for classes seen on either side (C_k + S_k > 0).",
            text=f"(\n  {cand}\n  * {on_target}\n  {n_stable}\n"
            f"  - {PREDICTION_CLASS_STABLE_MATCHED}\n"
            f"  * ignoring ({LABEL_CLASS}) group_left ()\n  {n_cand}\n) ^ 2\n"
            f"/ (\n  {cand}\n  + {PREDICTION_CLASS_STABLE_MATCHED}\n  > 0\n)\n"
            f"/ ignoring ({LABEL_CLASS}) group_left ()\n({n_cand} > 0)\n"
            f"/ {on_target}\n({n_stable} > 0)",
        ),
        Rule(
            record=PREDICTION_CLASS_CHI2,
            comment="The 2xK chi-square per candidate version: its terms, plus the classes "
            "only the stable predicted, which add (nS - M) nC / nS (M: the stable's "
            "predictions of the candidate's classes).",
            text=f"sum without ({LABEL_CLASS}) ({PREDICTION_CLASS_CHI2_TERM})\n+ (\n"
            f"  {n_stable}\n  - on ({target}) group_right ()\n"
            f"  sum without ({LABEL_CLASS}) ({PREDICTION_CLASS_STABLE_MATCHED})\n)\n"
            f"* {n_cand}\n/ {on_target}\n{n_stable}",
        ),
        Rule(
            record=PREDICTION_CLASS_DF,
            comment="Its degrees of freedom: classes seen on either side, minus 1.",
            text=f"count without ({LABEL_CLASS}) ({PREDICTION_CLASS_CHI2_TERM})\n"
            f"+ {on_target}\nsum by ({target}) ({PREDICTION_CLASS_STABLE} > bool 0)\n"
            f"- sum without ({LABEL_CLASS}) ({PREDICTION_CLASS_STABLE_MATCHED} > bool 0)\n- 1",
        ),
        Rule(
            record=PREDICTION_CLASS_ZSCORE,
            comment="The chi-square as a standard normal quantile (Wilson-Hilferty), so the "
            "divergence threshold in standard errors judges it too. Recorded where the class "
            "test applies: a candidate with more than two classes, or a table of more than "
            "two classes seen (the two models' classes differ); not for a binary classifier, "
            "which the mean test judges.",
            text=f"(\n  ({PREDICTION_CLASS_CHI2} / ({PREDICTION_CLASS_DF} > 0)) ^ (1 / 3)\n"
            f"  - (1 - 2 / (9 * {PREDICTION_CLASS_DF}))\n)\n"
            f"/ sqrt(2 / (9 * {PREDICTION_CLASS_DF}))\n"
            f"and on ({join(BY_ROLE)})\n(\n  {PREDICTION_CLASS_DF} >= 2\n  or\n"
            f"  count without ({LABEL_CLASS}) ({cand}) > 2\n)",
        ),
    ]

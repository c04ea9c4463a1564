"""The structure of the alerts on /feedback labels: what each reads, which guards it has, how
the candidate is matched with the stable, and that both are loaded but opt-in.

Their behaviour in a real Prometheus is ``tests/server/test_feedback_alerts_prometheus.py``.
"""

from __future__ import annotations

from promql_names import rules as chart_rules
from promql_names import tokens

from modeldeploy.operator import defaults as d
from modeldeploy.server import contract as c
from modeldeploy.server.contract import feedback, rules
from modeldeploy.server.contract import rulemodel as rm

TARGET_ON = "on (namespace, modeldeployment)"
ROLE_ON = "on (namespace, modeldeployment, role, version)"


def _records() -> dict[str, str]:
    return {r.record: r.expr for r in feedback.feedback_records()}


def test_live_performance_needs_margin_significance_and_labels_on_both_sides() -> None:
    expr = rules.alerts()[rules.ALERT_LIVE_PERFORMANCE].expr
    t, z = rules.DEFAULT_THRESHOLDS, rules.number(rules.LIVE_STD_ERRORS)
    assert f"{rm.FEEDBACK_ACCURACY_DROP} > {rules.number(t.live_accuracy_drop)}\n" in expr
    assert f"{rm.FEEDBACK_ACCURACY_DROP_ZSCORE} > {z}," in expr
    assert f"{rm.FEEDBACK_MAE_RISE} > {rules.number(t.live_error_rise)}\n" in expr
    assert f"{rm.FEEDBACK_MAE_RISE_ZSCORE} > {z}," in expr
    n = rules.MIN_FEEDBACK_LABELS
    assert f'{ROLE_ON} {rm.FEEDBACK_ROWS}{{role="candidate"}} >= {n}' in expr
    assert f"{TARGET_ON} {rm.FEEDBACK_STABLE_ROWS} >= {n}" in expr
    for test in (feedback.TEST_ACCURACY, feedback.TEST_MAE):
        assert f'"{rules.LABEL_TEST}", "{test}", "", ""' in expr


def test_the_candidate_is_compared_with_the_stable_of_its_own_modeldeployment() -> None:
    """As the divergence test: matched on the target only, the stable pooled over its
    versions, the result keeping the candidate's labels (its version among them)."""
    rec = _records()
    for name in (rm.FEEDBACK_STABLE_OUTCOMES, rm.FEEDBACK_STABLE_ROWS):
        assert rec[name].startswith("sum by (namespace, modeldeployment) (")
        assert 'role="stable"' in rec[name]
    drop = rec[rm.FEEDBACK_ACCURACY_DROP]
    assert drop == (
        f"{rm.FEEDBACK_STABLE_ACCURACY} - {TARGET_ON} group_right () "
        f'{rm.FEEDBACK_ACCURACY}{{role="candidate"}}'
    )
    compared = (rm.FEEDBACK_ACCURACY_DROP_ZSCORE, rm.FEEDBACK_MAE_RISE, rm.FEEDBACK_MAE_RISE_ZSCORE)
    for name in compared:
        assert f"{TARGET_ON} group_left ()" in rec[name], name
        assert 'role="candidate"' in rec[name], name
        assert "version" not in rec[name].split("unless")[0], name


def test_the_error_test_is_for_regressors_only() -> None:
    """A classifier's MAE is of its probability; it is judged by accuracy instead."""
    rec = _records()
    classifier = f"unless {ROLE_ON} {rm.FEEDBACK_OUTCOMES} > 0"
    assert rec[rm.FEEDBACK_MAE_RISE].endswith(classifier)
    assert rec[rm.FEEDBACK_MAE_RISE_ZSCORE].endswith(classifier)
    assert "unless" not in rec[rm.FEEDBACK_ACCURACY_DROP_ZSCORE]


def test_concept_drift_reads_the_detectors_alarms_over_its_window() -> None:
    rec = _records()
    assert rec[rm.CONCEPT_DRIFT_ALARMS] == (
        f"sum by (namespace, modeldeployment, role, version, {c.LABEL_DETECTOR}) "
        f"(increase({c.METRIC_CONCEPT_DRIFT_ALARMS}[{rm.CONCEPT_DRIFT_WINDOW}]))"
    )
    alert = rules.alerts()[rules.ALERT_CONCEPT_DRIFT]
    assert alert.expr == f"{rm.CONCEPT_DRIFT_ALARMS} > 0"
    assert alert.hold == "0s"


def test_both_are_in_the_chart_after_what_they_read_but_not_default() -> None:
    [group] = [g for g in rules.chart_groups() if g.name == rules.GROUP_FEEDBACK]
    names = [r.name for r in group.rules]
    assert names[-2:] == [rules.ALERT_LIVE_PERFORMANCE, rules.ALERT_CONCEPT_DRIFT]
    # A rule reads only what an earlier rule of the group recorded, or the server exports.
    for k, rule in enumerate(group.rules):
        metrics, _, _ = tokens(rule.expr)
        recorded = {m for m in metrics if m.startswith("modeldeploy:")}
        assert recorded <= set(names[:k]), rule.name
    chart_alerts = [r["alert"] for r in chart_rules() if "alert" in r]
    assert chart_alerts == list(rules.ALL_ALERTS)
    assert d.DEFAULT_ALERTS == rules.ALERTS
    assert not set(rules.OPT_IN_ALERTS) & set(d.DEFAULT_ALERTS)

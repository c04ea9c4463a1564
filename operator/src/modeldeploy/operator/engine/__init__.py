"""The rollout engine: a pure function of (spec, status, observations, now).

``reconcile`` returns the new status and the ``Actions`` (the desired state of every child).
There is no I/O, no clock and no kopf here. All progress lives in the status, and the actions
are a function of the new status alone, so an operator killed at any moment (before or after
it applied the actions, before or after it wrote the status) repeats the same decision on
restart: no step is skipped and no weight change happens twice.

The rollout is a list of steps (each strategy's ``plan``); ``status.current_step`` indexes
it. A step is *entered* (its side effects recorded in the status) and later *completed* by
an observation (pods ready, time passed, analysis passed) or a control. Analysis runs in the
background of every rollout: a failed sample rolls back at once (also between two samples,
when the fast alerts poll sees a watched alert fire for the candidate's version); samples
wait while the candidate's pods were never scraped (bounded by ``progressDeadlineSeconds``);
inconclusive samples never promote and, after ``consecutiveErrorLimit`` in a row, roll back
or pause; an analysis step needs ``minSamples`` predictions, else it pauses or rolls back
(``onInsufficientEvidence``).

Modules: ``status`` and ``records`` (the typed status and its JSON), ``strategy`` with ``canary``,
``bluegreen`` and ``shadow`` (the schedules), ``rollout`` (what they share: slots, steps,
promotion, rollback, history), ``controls``, ``judging`` (analysis), ``summary`` (phase and
conditions) and ``reconcile`` (the order of the passes and the desired state).
"""

from modeldeploy.operator.engine.controls import parse_control
from modeldeploy.operator.engine.judging import condition_holds, count_predictions, judge
from modeldeploy.operator.engine.reconcile import (
    analysis_role,
    next_sample_at,
    reconcile,
    sample_due,
)
from modeldeploy.operator.engine.status import (
    AnalysisResult,
    AnalysisState,
    Condition,
    HistoryEntry,
    RolloutStatus,
    SlotRecord,
)
from modeldeploy.operator.engine.strategy import STRATEGIES, Strategy, plan, strategy_of

__all__ = [
    "STRATEGIES",
    "AnalysisResult",
    "AnalysisState",
    "Condition",
    "HistoryEntry",
    "RolloutStatus",
    "SlotRecord",
    "Strategy",
    "analysis_role",
    "next_sample_at",
    "condition_holds",
    "count_predictions",
    "judge",
    "parse_control",
    "plan",
    "reconcile",
    "sample_due",
    "strategy_of",
]

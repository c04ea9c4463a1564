"""Analysis: judging one Prometheus sample, and the bookkeeping of samples in the status.

Evidence or no promotion: an unreachable Prometheus, a role it does not scrape, or a check
without a value is inconclusive, never a pass. Only a sample newer than the last one by
about an interval counts, so polling faster than ``analysis.interval`` changes nothing.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from modeldeploy.operator import defaults as d
from modeldeploy.operator.engine.context import Context
from modeldeploy.operator.engine.status import (
    AnalysisResult,
    AnalysisState,
    Outcome,
    RolloutStatus,
    second,
)
from modeldeploy.operator.model import AnalysisSample, Check, Spec

# Share of the interval after which a new sample is due: the operator's poller and the
# ModelDeployment's interval are not in lock-step, so allow some jitter.
_INTERVAL_SLACK = 0.8
_COMPARE = re.compile(r"^\s*result\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


def condition_holds(condition: str, value: float) -> bool:
    """Evaluate ``result OP NUMBER`` (the grammar the CRD admits) without eval()."""
    match = _COMPARE.match(condition)
    if not match:
        raise ValueError(f"bad condition {condition!r}: expected 'result OP NUMBER'")
    op, bound = match.group(1), float(match.group(2))
    return {
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
        "==": value == bound,
        "!=": value != bound,
    }[op]


def _check(check: Check, name: str, value: float) -> tuple[AnalysisResult, str]:
    """The result of one check with a value, and why it failed ("" if it passed)."""
    cond = ""
    if check.failure and condition_holds(check.failure, value):
        cond = check.failure
    elif check.success and not condition_holds(check.success, value):
        cond = f"not ({check.success})"
    result = AnalysisResult("check", name, f"{value:g}", "Failed" if cond else "Passed")
    return result, (f"check {name} = {value:g} ({cond})" if cond else "")


def judge(
    sample: AnalysisSample, alerts: tuple[str, ...], role: str, checks: tuple[Check, ...] = ()
) -> tuple[Outcome, str, list[AnalysisResult]]:
    """Passed, Failed or Inconclusive, a message naming what decided, and the results.

    A named alert firing for ``role`` fails; a failed check fails; an unreachable
    Prometheus, a role Prometheus does not scrape, or a check without a value is
    inconclusive.
    """
    if sample.error:
        return "Inconclusive", f"Prometheus: {sample.error}", []
    results: list[AnalysisResult] = []
    failed: list[str] = []
    unknown: list[str] = []
    watched = set(alerts)
    for name, value in sample.firing.get(role, ()):
        if name in watched:
            results.append(AnalysisResult("alert", name, f"{value:g}", "Failed"))
            failed.append(f"alert {name} firing for the {role} (value {value:g})")
    specs = {c.name: c for c in checks}
    for res in sample.checks:
        check = specs.get(res.name)
        if check is None:
            continue
        if res.value is None or math.isnan(res.value):
            results.append(AnalysisResult("check", res.name, "", "Inconclusive"))
            unknown.append(f"check {res.name}: {res.error or 'no data'}")
            continue
        result, why = _check(check, res.name, res.value)
        results.append(result)
        if why:
            failed.append(why)
    missing = {c.name for c in checks} - {r.name for r in sample.checks}
    unknown += [f"check {name}: not evaluated" for name in sorted(missing)]
    if failed:
        return "Failed", "; ".join(failed), results
    if role not in sample.scraped:
        unknown.append(f"no metrics from the {role} pods in Prometheus")
    if unknown:
        return "Inconclusive", "; ".join(unknown), results
    return (
        "Passed",
        f"no alert firing for the {role}"
        + (f", {len(sample.checks)} checks passed" if sample.checks else ""),
        results,
    )


def sample_is_new(spec: Spec, st: RolloutStatus, at: datetime) -> bool:
    """Whether a sample taken at ``at`` belongs to this rollout and is due."""
    last = st.analysis.last_sample_at if st.analysis else None
    if st.rollout_started_at is not None and at < st.rollout_started_at:
        return False
    if last is None:
        return True
    return (at - last).total_seconds() >= spec.analysis.interval * _INTERVAL_SLACK


def record_sample(ctx: Context, role: str) -> tuple[str, str] | None:
    """Judge and record the sample, if any is due; the (reason, message) to roll back on."""
    sample, spec, st = ctx.obs.analysis, ctx.spec, ctx.st
    if sample is None or not sample_is_new(spec, st, sample.at):
        return None
    outcome, message, results = judge(sample, spec.analysis.alerts, role, spec.analysis.checks)
    at = second(sample.at)
    analysis = st.analysis = st.analysis or AnalysisState()
    analysis.last_sample_at, analysis.outcome, analysis.message = at, outcome, message
    for result in results:
        result.at = at
    analysis.results = results[: d.ANALYSIS_RESULTS_LIMIT]
    if outcome == "Failed":
        return "AnalysisFailed", message
    if outcome == "Passed":
        analysis.consecutive_errors = 0
        analysis.passed_samples += 1
        return None
    errors = analysis.consecutive_errors = analysis.consecutive_errors + 1
    limit = spec.analysis.consecutive_error_limit
    ctx.event("Warning", "AnalysisInconclusive", f"{message} ({errors}/{limit})")
    if errors < limit:
        return None
    if spec.analysis.on_error_limit != "pause":
        return "AnalysisInconclusive", f"{errors} inconclusive analyses in a row: {message}"
    if not st.paused:
        st.paused, st.pause_started_at = True, ctx.stamp
        ctx.event("Warning", "Paused", f"paused after {errors} inconclusive analyses: {message}")
    return None


def watch_stable_drift(ctx: Context) -> None:
    """Surface input drift of the stable model as the ``InputDrift`` condition and an
    Event on each change: no rollback (there is nothing to roll back to), but the signal a
    retraining pipeline watches. Samples Prometheus could not give change nothing."""
    sample, st = ctx.obs.analysis, ctx.st
    if sample is None or sample.error:
        return
    values = [v for name, v in sample.firing.get(d.ROLE_STABLE, ()) if name == d.ALERT_DRIFT]
    old = st.condition(d.CONDITION_INPUT_DRIFT)
    was_drifting = old is not None and old.status == "True"
    if values:
        message = (
            f"{d.ALERT_DRIFT} firing for the stable {st.stable_version} (value {max(values):g})"
        )
        if not was_drifting:
            ctx.event("Warning", "StableDrift", message)
        st.set_condition(
            d.CONDITION_INPUT_DRIFT, "True", d.ALERT_DRIFT, message, ctx.stamp, ctx.spec.generation
        )
    elif was_drifting:
        message = f"no input drift on the stable {st.stable_version}"
        ctx.event("Normal", "StableDriftCleared", message)
        st.set_condition(
            d.CONDITION_INPUT_DRIFT, "False", "NoDrift", message, ctx.stamp, ctx.spec.generation
        )

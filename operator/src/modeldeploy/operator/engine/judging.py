"""Analysis: judging one Prometheus sample, and the bookkeeping of samples in the status.

Evidence or no promotion: an unreachable Prometheus, a named alert that is not a loaded and
healthy alerting rule there, a version it does not scrape, or a check without a value is
inconclusive, never a pass; an analysis step passes only with ``minSamples`` predictions
(``rollout``). Start-up is not failure: until the pods were scraped once, samples wait,
bounded by ``progressDeadlineSeconds``. Only a sample newer than the last one by about an
interval is judged, so polling faster than ``analysis.interval`` changes nothing, except
that a watched alert firing for the version rolls back at once.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from modeldeploy.operator import defaults as d
from modeldeploy.operator.engine.context import Context
from modeldeploy.operator.engine.status import (
    AnalysisResult,
    AnalysisState,
    Outcome,
    RolloutStatus,
    second,
)
from modeldeploy.operator.evidence import AnalysisSample, alert_name
from modeldeploy.operator.model import Check, Spec
from modeldeploy.operator.routers import replica_split

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


def _rules_unknown(sample: AnalysisSample, alerts: tuple[str, ...]) -> list[str]:
    """Why each named alert cannot be trusted to fire: not loaded, or its rule fails."""
    where = sample.prometheus or "Prometheus"
    if sample.rules is None:
        return [f"the loaded alerting rules of {where} were not read"] if alerts else []
    out = []
    for name in alerts:
        why = sample.rules.get(name)
        if why is None:
            out.append(f"alert {name} is not a loaded alerting rule in {where}")
        elif why:
            out.append(f"alert {name} cannot fire in {where}: {why}")
    return out


def firing_watched(
    sample: AnalysisSample, alerts: tuple[str, ...], role: str, version: str
) -> list[tuple[str, float]]:
    """The named alerts firing for ``role`` at ``version`` (an old version's never count)."""
    watched = set(alerts)
    return [(n, v) for n, v in sample.firing_for(role, version) if alert_name(n) in watched]


def _who(role: str, version: str) -> str:
    return f"the {role} {version}" if version else f"the {role}"


def judge(
    sample: AnalysisSample,
    alerts: tuple[str, ...],
    role: str,
    checks: tuple[Check, ...] = (),
    version: str = "",
) -> tuple[Outcome, str, list[AnalysisResult]]:
    """Passed, Failed or Inconclusive, a message naming what decided, and the results.

    A named alert firing for ``role`` at ``version`` fails; a failed check fails. An
    unreachable Prometheus, a named alert that is not a loaded and healthy alerting rule,
    a role and version Prometheus does not scrape, or a check without a value is
    inconclusive: evidence or no promotion.
    """
    if sample.error:
        return "Inconclusive", f"Prometheus: {sample.error}", []
    results: list[AnalysisResult] = []
    failed: list[str] = []
    unknown: list[str] = []
    for name, value in firing_watched(sample, alerts, role, version):
        results.append(AnalysisResult("alert", name, f"{value:g}", "Failed"))
        failed.append(f"alert {name} firing for {_who(role, version)} (value {value:g})")
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
    if not sample.is_scraped(role, version):
        unknown.insert(
            0,
            f"no metrics from {_who(role, version)} pods in {sample.prometheus or 'Prometheus'}",
        )
    unknown += _rules_unknown(sample, alerts)
    if unknown:
        return "Inconclusive", "; ".join(unknown), results
    return (
        "Passed",
        f"no alert firing for {_who(role, version)}"
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
    return at >= next_sample_at(spec, last)


def next_sample_at(spec: Spec, last: datetime) -> datetime:
    """The earliest time a snapshot counts as the sample after ``last``."""
    return last + timedelta(seconds=spec.analysis.interval * _INTERVAL_SLACK)


def version_of(st: RolloutStatus, role: str) -> str:
    """The model version whose alerts gate ``role`` now."""
    return st.candidate_version if role == d.ROLE_CANDIDATE else st.stable_version


def count_predictions(analysis: AnalysisState, sample: AnalysisSample, who: str) -> None:
    """Add the predictions served since the last sample to the step's evidence.

    The counter is the sum over the pods of ``who`` ("role/version"). The first value seen
    in a step is its baseline; a drop means a pod restarted (or went away), and the
    predictions since the last sample are then not counted: evidence is never over-counted.
    """
    role, _, version = who.partition("/")
    total = None if sample.error else sample.predictions_of(role, version)
    if total is None or math.isnan(total):
        return
    if analysis.predictions_of != who or analysis.predictions_seen is None:
        analysis.predictions_of, analysis.predictions_seen = who, total
        return
    if total > analysis.predictions_seen:
        analysis.predictions += int(total - analysis.predictions_seen)
    analysis.predictions_seen = total


def _fail_fast(
    ctx: Context, sample: AnalysisSample, role: str, version: str
) -> tuple[str, str] | None:
    """A watched alert firing for the version rolls back at once, whatever the interval."""
    fired = firing_watched(sample, ctx.spec.analysis.alerts, role, version)
    if sample.error or not fired:
        return None
    message = "; ".join(
        f"alert {name} firing for {_who(role, version)} (value {value:g})" for name, value in fired
    )
    analysis = ctx.st.analysis = ctx.st.analysis or AnalysisState()
    at = second(sample.at)
    analysis.outcome, analysis.message = "Failed", message
    analysis.results = [
        AnalysisResult("alert", name, f"{value:g}", "Failed", at) for name, value in fired
    ][: d.ANALYSIS_RESULTS_LIMIT]
    return "AnalysisFailed", message


def _waiting(ctx: Context, sample: AnalysisSample, role: str, version: str) -> bool:
    """Start-up is not failure: until the pods of ``role`` at ``version`` were scraped once
    in this rollout, a sample without their metrics waits."""
    analysis = ctx.st.analysis
    assert analysis is not None
    who = f"{role}/{version}"
    if sample.error:
        return False
    if sample.is_scraped(role, version):
        analysis.scraped_as = who
        return False
    return analysis.scraped_as != who


def _deadline(ctx: Context, role: str, version: str) -> tuple[str, str] | None:
    """Waiting is bounded by ``progressDeadlineSeconds``; the failure says why."""
    st, spec = ctx.st, ctx.spec
    analysis = st.analysis
    assert analysis is not None
    if role == d.ROLE_CANDIDATE and replica_split(spec, st.canary_weight, True)[1] == 0:
        analysis.waiting_since = None  # no candidate pods at this weight: nothing to wait for
        return None
    analysis.waiting_since = analysis.waiting_since or ctx.stamp
    if ctx.since(analysis.waiting_since) <= spec.progress_deadline:
        return None
    slot = st.candidate_slot if role == d.ROLE_CANDIDATE or not st.stable_slot else st.stable_slot
    reason = ctx.obs.slot(slot).reason if slot else ""
    where = ctx.obs.analysis.prometheus if ctx.obs.analysis else ""
    why = reason or f"its pods are not scraped by {where or 'Prometheus'}"
    who = "candidate" if role == d.ROLE_CANDIDATE else role
    return (
        "ProgressDeadlineExceeded",
        f"{who} {version} not ready after {spec.progress_deadline:g}s: {why}",
    )


def record_sample(ctx: Context, role: str) -> tuple[str, str] | None:
    """Judge and record the sample, if any is due; the (reason, message) to roll back on.

    A sample that is not due still rolls back on a watched alert firing for the version:
    the operator reads the firing alerts every second, so the reaction does not wait for
    ``analysis.interval``."""
    sample, spec, st = ctx.obs.analysis, ctx.spec, ctx.st
    if sample is None:
        return None
    version = version_of(st, role)
    analysis = st.analysis = st.analysis or AnalysisState()
    count_predictions(analysis, sample, f"{role}/{version}")
    if not sample_is_new(spec, st, sample.at):
        read_at = sample.alerts_at or sample.at
        if st.rollout_started_at is not None and read_at < st.rollout_started_at:
            return None  # read before this rollout began
        return _fail_fast(ctx, sample, role, version)
    outcome, message, results = judge(
        sample, spec.analysis.alerts, role, spec.analysis.checks, version
    )
    at = second(sample.at)
    if outcome == "Inconclusive" and _waiting(ctx, sample, role, version):
        outcome, message = "Waiting", f"waiting for {_who(role, version)}: {message}"
    elif outcome != "Failed":
        _waiting(ctx, sample, role, version)  # records the first scrape
    analysis.last_sample_at, analysis.outcome, analysis.message = at, outcome, message
    for result in results:
        result.at = at
    analysis.results = results[: d.ANALYSIS_RESULTS_LIMIT]
    if outcome != "Waiting":
        analysis.waiting_since = None
    if outcome == "Failed":
        return "AnalysisFailed", message
    if outcome == "Waiting":
        return _deadline(ctx, role, version)
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
        st.pause_reason = f"{errors} inconclusive analyses in a row: {message}"
        ctx.event("Warning", "Paused", f"paused after {errors} inconclusive analyses: {message}")
    return None


def watch_stable_drift(ctx: Context) -> None:
    """Surface input drift of the stable model as the ``InputDrift`` condition and an
    Event on each change: no rollback (there is nothing to roll back to), but the signal a
    retraining pipeline watches. Samples Prometheus could not give change nothing."""
    sample, st = ctx.obs.analysis, ctx.st
    if sample is None or sample.error:
        return
    values = [
        v
        for name, v in sample.firing_for(d.ROLE_STABLE, st.stable_version)
        if alert_name(name) == d.ALERT_DRIFT
    ]
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

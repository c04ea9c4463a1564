"""A retrained version's gate table in the registry, as pure code (no I/O).

The gate Job's answer reaches ``status.retrain`` as a summary line and Events; a user who
looks at the version in the registry (why did version 7 never serve?) finds the verdict, the
summary and the whole table on the version itself, as ``modeldeploy.gate.*`` tags.

Level-based, like the write-back (``writeback``): when the gate decides, ``record`` keeps the
table in the run with ``gateTags.state: pending``; ``pending`` reads the state alone (the
current run and the history), so a restarted operator, or one that could not reach the
tracking server, writes it again, a failed write no sooner than ``RETRY_SECONDS`` later;
``written`` marks the outcome and, once the registry has the table, drops it from status.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Final

from modeldeploy.operator.model import Event, format_time, parse_time
from modeldeploy.server.contract import registry as reg
from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.contract import sources as c

Json = dict[str, Any]

KEY: Final = "gateTags"  # the run's field: {state, attemptedAt, error}
TABLE: Final = "gateTable"  # the run's field until written: the checks as compact JSON
PENDING, DONE, FAILED = "pending", "done", "failed"
RETRY_SECONDS: Final = 30.0

TAG_VERDICT: Final = c.TAG_GATE_PREFIX + "verdict"
TAG_SUMMARY: Final = c.TAG_GATE_PREFIX + "summary"
TAG_CHECKS: Final = c.TAG_GATE_PREFIX + "checks"
TAG_RUN: Final = c.TAG_GATE_PREFIX + "run"
TAG_TIME: Final = c.TAG_GATE_PREFIX + "time"
TAG_DEPLOYMENT: Final = c.TAG_GATE_PREFIX + "modeldeployment"


def record(run: Json, result: Json, passed: bool, summary: str) -> Json:
    """The run with its gate decision and, when its version is a registry version, the
    table to write (``result``: the gate Job's answer)."""
    out = {**run, "gateVerdict": "passed" if passed else "rejected", "gateSummary": summary}
    if not _version_of(run)[1]:
        return out
    checks = result.get(rc.RESULT_CHECKS)
    table = json.dumps(checks if isinstance(checks, list) else [], separators=(",", ":"))
    return {**out, TABLE: table, KEY: {"state": PENDING}}


def _version_of(run: Json) -> tuple[str, str]:
    """(name, version) of the run's ``models:/NAME/VERSION``; ("", "") otherwise."""
    try:
        name, version, _ = c.split_models_uri(str(run.get("modelURI", "")))
    except ValueError:
        return "", ""
    return (name, version) if version else ("", "")


def _runs(state: Json) -> list[Json]:
    current = state.get("current")
    history = state.get("history") or []
    return [r for r in [current, *history] if isinstance(r, dict)]


def pending(state: Json, now: datetime) -> list[Json]:
    """The runs whose gate table the registry does not have yet and that are due, oldest
    first (a failed write is due ``RETRY_SECONDS`` after its attempt)."""
    due = []
    for run in _runs(state):
        tags = run.get(KEY)
        if not isinstance(tags, dict) or tags.get("state") not in (PENDING, FAILED):
            continue
        last = parse_time(tags.get("attemptedAt"))
        if tags.get("state") == FAILED and last and now - last < timedelta(seconds=RETRY_SECONDS):
            continue
        due.append(run)
    return list(reversed(due))


def requests(run: Json, deployment: str, now: datetime) -> list[reg.Request]:
    """The tag calls for one run's version (``deployment``: NAMESPACE/NAME)."""
    name, version = _version_of(run)
    tags = (
        (TAG_VERDICT, str(run.get("gateVerdict", ""))),
        (TAG_SUMMARY, str(run.get("gateSummary", ""))),
        (TAG_CHECKS, str(run.get(TABLE, "[]"))),
        (TAG_RUN, str(run.get("id", ""))),
        (TAG_TIME, format_time(now)),
        (TAG_DEPLOYMENT, deployment),
    )
    return [reg.set_tag_request(name, version, key, value) for key, value in tags]


def written(state: Json, run_id: str, now: datetime, error: str = "") -> tuple[Json, list[Event]]:
    """The state after writing run ``run_id``'s tags (``error``: why it failed), and the
    Event to post: one per failure that is news, one on success."""
    out: Json = json.loads(json.dumps(state))
    events: list[Event] = []
    for run in _runs(out):
        if str(run.get("id")) != run_id:
            continue
        before = run.get(KEY)
        before = before if isinstance(before, dict) else {}
        where = run.get("modelURI", "")
        if error:
            run[KEY] = {"state": FAILED, "attemptedAt": format_time(now), "error": error}
            if before.get("error") != error:
                events.append(
                    Event("Warning", "GateTagsFailed", f"run {run_id}: tagging {where}: {error}")
                )
        else:
            run[KEY] = {"state": DONE, "attemptedAt": format_time(now)}
            run.pop(TABLE, None)
            verdict = run.get("gateVerdict", "")
            message = f"run {run_id}: {where} tagged {TAG_VERDICT}={verdict}"
            events.append(Event("Normal", "GateTagged", message))
    return out, events

"""The gate on the labelled-data store, as the gate Job runs it: which rows, and its answer.

The gate judges the candidate and the stable on the same rows, and those rows must be ones
the candidate was not fitted on: the held-out quarter of the window (``recent``), which
``modeldeploy retrain`` left out of its training set by the same rule.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.gate import Decision, GateError, as_dict
from modeldeploy.server.loop import recent

SUMMARY_CHECKS = 3  # failed checks named in the summary line


def held_out_window(args: argparse.Namespace) -> Any:
    """The held-out labelled rows of the window, read from the store (``gate`` flags)."""
    from modeldeploy.server.bundle import read_card
    from modeldeploy.server.labelled import read_window
    from modeldeploy.server.loop.cli import settle
    from modeldeploy.server.sources.s3 import settings_from_args

    card = read_card(Path(args.candidate))  # the name only: nothing is unpickled here
    until = args.until or datetime.now(UTC)
    settle(until, args.settle_seconds)
    frame = read_window(
        args.labelled_data,
        since=args.since,
        until=until,
        model=card.name,
        s3=settings_from_args(args),
    )
    _, held = recent.split(frame)
    if len(held) == 0:
        raise GateError(
            f"{args.labelled_data}: no held-out labelled rows for {card.name} in the window "
            f"({len(frame)} rows in all)"
        )
    return held.reset_index(drop=True)


def summary(decision: Decision) -> str:
    """One line for the operator's Event: the verdict and the first failed checks."""
    failed = [c for c in decision.checks if c.passed is False]
    head = f"{decision.candidate} vs {decision.current} on {decision.rows} held-out rows"
    if not failed:
        return f"{head}: every check passed"
    named = "; ".join(f"{c.name} {c.value} (needs {c.threshold})" for c in failed[:SUMMARY_CHECKS])
    more = f" and {len(failed) - SUMMARY_CHECKS} more" if len(failed) > SUMMARY_CHECKS else ""
    return f"{head}: {len(failed)} failed: {named}{more}"


def answer(decision: Decision) -> dict[str, Any]:
    """The gate Job's answer (``contract.retrain``)."""
    data = as_dict(decision)
    return {
        rc.RESULT_PASSED: decision.promote,
        rc.RESULT_SUMMARY: summary(decision),
        rc.RESULT_CHECKS: [
            {k: check[k] for k in ("name", "value", "threshold", "passed")}
            for check in data["checks"]
        ],
    }


def error_answer(message: str) -> dict[str, Any]:
    """The answer when the gate could not run: not passed, and why."""
    return {rc.RESULT_PASSED: False, rc.RESULT_SUMMARY: f"the gate could not run: {message}"}

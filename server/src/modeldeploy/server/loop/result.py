"""A Job's answer to the operator: one JSON object in the container's termination message.

Kubernetes keeps at most 4096 bytes of a termination message, so a gate table that is
longer loses checks from its end (failed checks first kept) rather than becoming invalid
JSON the operator cannot read; the summary always survives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modeldeploy.server.contract import retrain as rc


def encode(answer: dict[str, Any], limit: int = rc.TERMINATION_MESSAGE_MAX) -> str:
    """``answer`` as compact JSON of at most ``limit`` bytes, cutting its checks to fit."""
    text = json.dumps(answer, separators=(",", ":"))
    checks = list(answer.get(rc.RESULT_CHECKS, []))
    if len(text.encode()) <= limit or not checks:
        if len(text.encode()) > limit:
            raise ValueError(f"a result of {len(text.encode())} bytes cannot be cut to {limit}")
        return text
    # Failed checks first: they are the reason, and the operator's Event shows the first ones.
    ordered = sorted(checks, key=lambda c: c.get("passed") is not False)
    kept: list[dict[str, Any]] = []
    for check in ordered:
        trial = {**answer, rc.RESULT_CHECKS: [*kept, check], "checksCut": True}
        if len(json.dumps(trial, separators=(",", ":")).encode()) > limit:
            break
        kept.append(check)
    return json.dumps({**answer, rc.RESULT_CHECKS: kept, "checksCut": True}, separators=(",", ":"))


def write(path: Path | str | None, answer: dict[str, Any]) -> None:
    """Write the answer where the Job's container keeps its termination message (no-op
    without a path: run by hand, the command prints its result instead)."""
    if path:
        Path(path).write_text(encode(answer), encoding="utf-8")

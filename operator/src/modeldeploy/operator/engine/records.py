"""The records inside a status (conditions, slots, analysis, history) and their JSON.

Each ``to_json`` writes the keys the untyped engine wrote, and no null: see ``status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from modeldeploy.operator import defaults as d
from modeldeploy.operator.model import Json, Slot, Template, format_time, parse_time

# "Waiting": the pods are not Ready and scraped yet (start-up is not failure).
Outcome = Literal["Passed", "Failed", "Inconclusive", "Waiting"]
_OUTCOMES: tuple[str, ...] = ("Passed", "Failed", "Inconclusive", "Waiting")


def second(at: datetime) -> datetime:
    """``at`` as the status stores it (UTC, whole seconds)."""
    return at.astimezone(UTC).replace(microsecond=0)


def read_time(raw: Any) -> datetime | None:
    if not raw or not isinstance(raw, str):
        return None
    try:
        return parse_time(raw)
    except ValueError:
        try:  # written by hand or by another tool: still a time, just not ours
            return second(datetime.fromisoformat(raw.replace("Z", "+00:00")))
        except ValueError:
            return None


def put(out: Json, key: str, value: Any) -> None:
    """Set ``key`` unless the value means "absent" ("", False, None; see ``status``)."""
    if isinstance(value, datetime):
        out[key] = format_time(value)
    elif value not in (None, "", False):
        out[key] = value


def read_slot(raw: Any) -> Slot | None:
    return cast(Slot, raw) if raw in d.SLOTS else None


def read_str(raw: Json, key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value)


def read_int(raw: Json, key: str) -> int:
    try:
        return int(raw.get(key) or 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class Condition:
    """One entry of ``conditions`` in the Kubernetes API conventions."""

    type: str
    status: str = "Unknown"
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int = 0

    @classmethod
    def from_json(cls, raw: Json) -> Condition:
        return cls(
            type=read_str(raw, "type"),
            status=read_str(raw, "status") or "Unknown",
            reason=read_str(raw, "reason"),
            message=read_str(raw, "message"),
            last_transition_time=read_time(raw.get("lastTransitionTime")),
            observed_generation=read_int(raw, "observedGeneration"),
        )

    def to_json(self) -> Json:
        # Every key, always: "message" may be empty, and kstatus reads all of them.
        out: Json = {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "observedGeneration": self.observed_generation,
        }
        put(out, "lastTransitionTime", self.last_transition_time)
        return out


@dataclass
class SlotRecord:
    """What a slot runs. Recorded when the slot is filled, so the Deployment can be rebuilt
    from the status alone even after the spec moved on."""

    template: Template
    revision: str
    serve_role: str = d.ROLE_STABLE

    @property
    def version(self) -> str:
        return self.template.model.version

    @classmethod
    def from_json(cls, raw: Json) -> SlotRecord:
        return cls(
            template=Template.from_json(raw),
            revision=read_str(raw, "revision"),
            serve_role=read_str(raw, "serveRole") or d.ROLE_STABLE,
        )

    def to_json(self) -> Json:
        return {
            **self.template.to_json(),
            "version": self.version,
            "revision": self.revision,
            "serveRole": self.serve_role,
        }


@dataclass
class AnalysisResult:
    """One alert or check that decided (or would have decided) a sample."""

    kind: Literal["alert", "check"]
    name: str
    value: str
    outcome: Outcome
    at: datetime | None = None

    @classmethod
    def from_json(cls, raw: Json) -> AnalysisResult:
        kind: Literal["alert", "check"] = "alert" if raw.get("kind") == "alert" else "check"
        outcome = raw.get("outcome") if raw.get("outcome") in _OUTCOMES else "Inconclusive"
        return cls(
            kind=kind,
            name=read_str(raw, "name"),
            value=read_str(raw, "value"),
            outcome=cast(Outcome, outcome),
            at=read_time(raw.get("at")),
        )

    def to_json(self) -> Json:
        out: Json = {
            "kind": self.kind,
            "name": self.name,
            "value": self.value,
            "outcome": self.outcome,
        }
        put(out, "at", self.at)
        return out


@dataclass
class AnalysisState:
    """The background analysis of the current (or last) rollout.

    ``consecutive_errors`` belongs here (it counts inconclusive samples) although the JSON
    keeps it at the top level as ``consecutiveErrors``. The four sample keys are written
    together, once a sample was taken; ``results`` may then be an empty list.
    """

    passed_samples: int = 0
    consecutive_errors: int = 0
    last_sample_at: datetime | None = None
    outcome: Outcome | None = None
    message: str = ""
    results: list[AnalysisResult] = field(default_factory=list)
    # Evidence: predictions served in the current step, from the server's counter (its
    # value at the last sample, and whose it is: "role/version").
    predictions: int = 0
    predictions_seen: float | None = None
    predictions_of: str = ""
    scraped_as: str = ""  # "role/version" first seen scraped: until then, samples wait
    waiting_since: datetime | None = None

    @classmethod
    def from_json(cls, raw: Json, consecutive_errors: int) -> AnalysisState:
        outcome = raw.get("outcome")
        seen = raw.get("predictionsSeen")
        return cls(
            passed_samples=read_int(raw, "passedSamples"),
            consecutive_errors=consecutive_errors,
            last_sample_at=read_time(raw.get("lastSampleAt")),
            outcome=cast(Outcome, outcome) if outcome in _OUTCOMES else None,
            message=read_str(raw, "message"),
            results=[
                AnalysisResult.from_json(r) for r in raw.get("results") or [] if isinstance(r, dict)
            ],
            predictions=read_int(raw, "predictions"),
            predictions_seen=float(seen) if isinstance(seen, (int, float)) else None,
            predictions_of=read_str(raw, "predictionsOf"),
            scraped_as=read_str(raw, "scrapedAs"),
            waiting_since=read_time(raw.get("waitingSince")),
        )

    def to_json(self) -> Json:
        out: Json = {"passedSamples": self.passed_samples}
        if self.last_sample_at is not None:
            out.update(
                lastSampleAt=format_time(self.last_sample_at),
                message=self.message,
                results=[r.to_json() for r in self.results],
            )
            put(out, "outcome", self.outcome)
        if self.predictions:
            out["predictions"] = self.predictions
        if self.predictions_seen is not None:
            out["predictionsSeen"] = self.predictions_seen
        put(out, "predictionsOf", self.predictions_of)
        put(out, "scrapedAs", self.scraped_as)
        put(out, "waitingSince", self.waiting_since)
        return out


@dataclass
class HistoryEntry:
    """How one rollout ended."""

    version: str
    revision: str
    outcome: str
    reason: str
    message: str
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_json(cls, raw: Json) -> HistoryEntry:
        return cls(
            version=read_str(raw, "version"),
            revision=read_str(raw, "revision"),
            outcome=read_str(raw, "outcome"),
            reason=read_str(raw, "reason"),
            message=read_str(raw, "message"),
            started_at=read_time(raw.get("startedAt")),
            finished_at=read_time(raw.get("finishedAt")),
        )

    def to_json(self) -> Json:
        out: Json = {
            "version": self.version,
            "revision": self.revision,
            "outcome": self.outcome,
            "reason": self.reason,
            "message": self.message,
        }
        put(out, "startedAt", self.started_at)
        put(out, "finishedAt", self.finished_at)
        return out

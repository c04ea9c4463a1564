"""The typed ``.status`` of a ModelDeployment: parsed once, written once.

The JSON is the contract (the CRD's status schema, the kubectl plugin, the e2e tests and
GitOps health checks read it), so ``to_json`` writes exactly the keys the untyped engine
wrote, and leaves out what it left out: an empty string, ``False``, ``None`` or an empty
collection here means "the key is absent", never a null, because a null in a merge patch
deletes and the schema declares no nullable field. ``from_json`` tolerates missing keys and
keeps unknown top-level keys, so a status written by another version survives a write.

Times are ``datetime`` at one-second precision, the precision Kubernetes (and so the status)
keeps: a decision taken on the value in memory is the one taken after a restart.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from modeldeploy.operator import defaults as d
from modeldeploy.operator.model import Json, Slot, SpecError, Template, format_time, parse_time

Outcome = Literal["Passed", "Failed", "Inconclusive"]
_OUTCOMES: tuple[str, ...] = ("Passed", "Failed", "Inconclusive")


def second(at: datetime) -> datetime:
    """``at`` as the status stores it (UTC, whole seconds)."""
    return at.astimezone(UTC).replace(microsecond=0)


def _time(raw: Any) -> datetime | None:
    if not raw or not isinstance(raw, str):
        return None
    try:
        return parse_time(raw)
    except ValueError:
        try:  # written by hand or by another tool: still a time, just not ours
            return second(datetime.fromisoformat(raw.replace("Z", "+00:00")))
        except ValueError:
            return None


def _put(out: Json, key: str, value: Any) -> None:
    """Set ``key`` unless the value means "absent" (see the module docstring)."""
    if isinstance(value, datetime):
        out[key] = format_time(value)
    elif value not in (None, "", False):
        out[key] = value


def _slot(raw: Any) -> Slot | None:
    return cast(Slot, raw) if raw in d.SLOTS else None


def _str(raw: Json, key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value)


def _int(raw: Json, key: str) -> int:
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
            type=_str(raw, "type"),
            status=_str(raw, "status") or "Unknown",
            reason=_str(raw, "reason"),
            message=_str(raw, "message"),
            last_transition_time=_time(raw.get("lastTransitionTime")),
            observed_generation=_int(raw, "observedGeneration"),
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
        _put(out, "lastTransitionTime", self.last_transition_time)
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
            revision=_str(raw, "revision"),
            serve_role=_str(raw, "serveRole") or d.ROLE_STABLE,
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
            name=_str(raw, "name"),
            value=_str(raw, "value"),
            outcome=cast(Outcome, outcome),
            at=_time(raw.get("at")),
        )

    def to_json(self) -> Json:
        out: Json = {
            "kind": self.kind,
            "name": self.name,
            "value": self.value,
            "outcome": self.outcome,
        }
        _put(out, "at", self.at)
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

    @classmethod
    def from_json(cls, raw: Json, consecutive_errors: int) -> AnalysisState:
        outcome = raw.get("outcome")
        return cls(
            passed_samples=_int(raw, "passedSamples"),
            consecutive_errors=consecutive_errors,
            last_sample_at=_time(raw.get("lastSampleAt")),
            outcome=cast(Outcome, outcome) if outcome in _OUTCOMES else None,
            message=_str(raw, "message"),
            results=[
                AnalysisResult.from_json(r) for r in raw.get("results") or [] if isinstance(r, dict)
            ],
        )

    def to_json(self) -> Json:
        out: Json = {"passedSamples": self.passed_samples}
        if self.last_sample_at is not None:
            out.update(
                lastSampleAt=format_time(self.last_sample_at),
                message=self.message,
                results=[r.to_json() for r in self.results],
            )
            _put(out, "outcome", self.outcome)
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
            version=_str(raw, "version"),
            revision=_str(raw, "revision"),
            outcome=_str(raw, "outcome"),
            reason=_str(raw, "reason"),
            message=_str(raw, "message"),
            started_at=_time(raw.get("startedAt")),
            finished_at=_time(raw.get("finishedAt")),
        )

    def to_json(self) -> Json:
        out: Json = {
            "version": self.version,
            "revision": self.revision,
            "outcome": self.outcome,
            "reason": self.reason,
            "message": self.message,
        }
        _put(out, "startedAt", self.started_at)
        _put(out, "finishedAt", self.finished_at)
        return out


# (attribute, JSON key) of the scalar fields, in the order the JSON lists them.
_SCALARS: tuple[tuple[str, str], ...] = (
    ("phase", "phase"),
    ("message", "message"),
    ("strategy", "strategy"),
    ("stable_slot", "stableSlot"),
    ("stable_version", "stableVersion"),
    ("stable_revision", "stableRevision"),
    ("stable_served", "stableServed"),
    ("candidate_slot", "candidateSlot"),
    ("candidate_version", "candidateVersion"),
    ("candidate_revision", "candidateRevision"),
    ("aborted_revision", "abortedRevision"),
    ("step_started_at", "stepStartedAt"),
    ("rollout_started_at", "rolloutStartedAt"),
    ("paused", "paused"),
    ("pause_started_at", "pauseStartedAt"),
    ("promoted", "promoted"),
    ("previous_slot", "previousSlot"),
    ("scale_down_at", "scaleDownAt"),
    ("last_control", "lastControl"),
)
_KNOWN = {key for _, key in _SCALARS} | {
    "observedGeneration",
    "canaryWeight",
    "currentStep",
    "consecutiveErrors",
    "slots",
    "analysis",
    "history",
    "conditions",
}


@dataclass
class RolloutStatus:
    """Everything a restarted operator needs to take the same decision again."""

    phase: str = ""
    message: str = ""
    strategy: str = ""
    observed_generation: int | None = None
    # The stable pointer; ``canary_weight`` and ``current_step`` are written with it.
    stable_slot: Slot | None = None
    stable_version: str = ""
    stable_revision: str = ""
    stable_served: bool = False  # the stable revision was seen serving once
    canary_weight: int = 0
    current_step: int = 0
    # The rollout in progress: a candidate revision means one is.
    candidate_slot: Slot | None = None
    candidate_version: str = ""
    candidate_revision: str = ""
    step_started_at: datetime | None = None
    rollout_started_at: datetime | None = None
    promoted: bool = False  # the stable pointer already moved to the candidate
    previous_slot: Slot | None = None
    scale_down_at: datetime | None = None
    aborted_revision: str = ""  # rolled back: not retried until the spec changes or retry
    paused: bool = False
    pause_started_at: datetime | None = None
    last_control: str = ""
    slots: dict[Slot, SlotRecord] = field(default_factory=dict)
    analysis: AnalysisState | None = None  # None until the first rollout starts
    history: list[HistoryEntry] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    extra: Json = field(default_factory=dict)  # keys this version does not know

    @property
    def active(self) -> bool:
        return bool(self.candidate_revision)

    def copy(self) -> RolloutStatus:
        return copy.deepcopy(self)

    # --- conditions ---------------------------------------------------------------------

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def set_condition(
        self, type_: str, value: str, reason: str, message: str, now: datetime, generation: int
    ) -> None:
        """Upsert ``type_``; ``lastTransitionTime`` moves only when ``value`` changes."""
        cond = self.condition(type_)
        if cond is None:
            cond = Condition(type=type_, status=value, last_transition_time=now)
            self.conditions.append(cond)
        elif cond.status != value:
            cond.status, cond.last_transition_time = value, now
        cond.reason, cond.message, cond.observed_generation = reason, message, generation

    # --- JSON ---------------------------------------------------------------------------

    @classmethod
    def from_json(cls, raw: Json | None) -> RolloutStatus:
        raw = raw or {}
        st = cls(extra={k: copy.deepcopy(v) for k, v in raw.items() if k not in _KNOWN})
        for attr, key in _SCALARS:
            value = raw.get(key)
            if attr.endswith("_slot"):
                setattr(st, attr, _slot(value))
            elif attr.endswith("_at"):
                setattr(st, attr, _time(value))
            elif attr in ("stable_served", "paused", "promoted"):
                setattr(st, attr, bool(value))
            else:
                setattr(st, attr, "" if value is None else str(value))
        if raw.get("observedGeneration") is not None:
            st.observed_generation = _int(raw, "observedGeneration")
        st.canary_weight, st.current_step = _int(raw, "canaryWeight"), _int(raw, "currentStep")
        for name, record in (raw.get("slots") or {}).items():
            slot = _slot(name)
            if slot is not None and isinstance(record, dict):
                try:
                    st.slots[slot] = SlotRecord.from_json(record)
                except SpecError:
                    continue  # not a slot this operator wrote; the next rollout refills it
        if "analysis" in raw or "consecutiveErrors" in raw:
            st.analysis = AnalysisState.from_json(
                raw.get("analysis") or {}, _int(raw, "consecutiveErrors")
            )
        st.history = [
            HistoryEntry.from_json(h) for h in raw.get("history") or [] if isinstance(h, dict)
        ]
        st.conditions = [
            Condition.from_json(c) for c in raw.get("conditions") or [] if isinstance(c, dict)
        ]
        return st

    def to_json(self) -> Json:
        out: Json = copy.deepcopy(self.extra)
        for attr, key in _SCALARS:
            _put(out, key, getattr(self, attr))
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        if self.stable_slot is not None:
            out.update(canaryWeight=self.canary_weight, currentStep=self.current_step)
        if self.slots:
            out["slots"] = {slot: rec.to_json() for slot, rec in self.slots.items()}
        if self.analysis is not None:
            out["consecutiveErrors"] = self.analysis.consecutive_errors
            out["analysis"] = self.analysis.to_json()
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        if self.conditions:
            out["conditions"] = [c.to_json() for c in self.conditions]
        return out

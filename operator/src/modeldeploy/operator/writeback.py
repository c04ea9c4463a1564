"""Writing a rollout's outcome back to the MLflow Model Registry, as pure code (no I/O).

Opt-in (``spec.model.mlflow.writeBack.enabled``). After a promotion the registry's alias
(default ``production``) is moved to the promoted version and the version is tagged; after
a rollback the candidate version is tagged with the rule that fired and its value. So "which
model is live, and what happened to the last candidate" reads the same in the registry and
in the ModelDeployment's history.

Level-based, like the rest of the operator: the engine writes the history; ``carry``
(called by the reconcile on the status it is about to write) adds to each new Promoted or
RolledBack entry what the write-back needs (the concrete ``models:/NAME/VERSION``, the
rule and value, the tracking server and alias) with ``writeBack.state: pending``, and keeps
these fields on entries it saw before (the engine does not know them). ``pending`` reads
the status alone and says what is still to do, so a restarted operator, or one that failed
to reach the tracking server, does it again; ``writeback_task`` does the calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from modeldeploy.server.contract import sources as c

Json = dict[str, Any]

KEY: Final = "writeBack"  # the history entry's field
PENDING, DONE, FAILED = "pending", "done", "failed"
STATES: Final = (PENDING, DONE, FAILED)
DEFAULT_ALIAS: Final = "production"
RETRY_SECONDS: Final = 30.0  # a failed write-back is tried again this long after
OUTCOME_TAGS: Final = {"Promoted": "promoted", "RolledBack": "rolledBack"}
# The fields carry() adds to a history entry (the engine's own fields are left alone).
CARRIED: Final = ("modelURI", "rule", "value", KEY)

TAG_OUTCOME: Final = c.TAG_ROLLOUT_PREFIX + "outcome"
TAG_TIME: Final = c.TAG_ROLLOUT_PREFIX + "time"
TAG_DEPLOYMENT: Final = c.TAG_ROLLOUT_PREFIX + "modeldeployment"
TAG_RULE: Final = c.TAG_ROLLOUT_PREFIX + "rule"
TAG_VALUE: Final = c.TAG_ROLLOUT_PREFIX + "value"


@dataclass(frozen=True)
class Settings:
    """``spec.model.mlflow.writeBack`` (off unless enabled)."""

    enabled: bool = False
    alias: str = DEFAULT_ALIAS

    @classmethod
    def from_spec(cls, spec: Json) -> Settings:
        """From a ModelDeployment's ``spec`` (the apiserver validated and defaulted it)."""
        model = spec.get("model") or {}
        mlflow = model.get("mlflow") if isinstance(model, dict) else None
        raw = (mlflow or {}).get(KEY) if isinstance(mlflow, dict) else None
        if not isinstance(raw, dict):
            return cls()
        return cls(bool(raw.get("enabled", False)), str(raw.get("alias") or DEFAULT_ALIAS))


@dataclass(frozen=True)
class WriteBack:
    """One write-back still to do: tags on ``name``/``version``, and the alias to move."""

    index: int  # of the history entry (newest first)
    key: tuple[str, str, str]  # (revision, finishedAt, outcome): the entry, whatever its index
    tracking_uri: str
    name: str
    version: str
    tags: tuple[tuple[str, str], ...]
    alias: str  # "" when no alias is to move (a rollback, or a promotion since superseded)

    def describe(self) -> str:
        """What was written, for the Event and the entry's message (no credential in it)."""
        outcome = dict(self.tags).get(TAG_OUTCOME, "")
        what = f"models:/{self.name}/{self.version} tagged {TAG_OUTCOME}={outcome}"
        return what + (f"; alias {self.alias} -> version {self.version}" if self.alias else "")


def entry_key(entry: Json) -> tuple[str, str, str]:
    return (
        str(entry.get("revision", "")),
        str(entry.get("finishedAt", "")),
        str(entry.get("outcome", "")),
    )


def history(status: Json) -> list[Json]:
    return [h for h in status.get("history") or [] if isinstance(h, dict)]


def _slot_model(status: Json, revision: str) -> Json:
    """The model block of the slot that ran ``revision`` (what the rollout really ran)."""
    for slot in (status.get("slots") or {}).values():
        if isinstance(slot, dict) and slot.get("revision") == revision:
            model = slot.get("model")
            return model if isinstance(model, dict) else {}
    return {}


def _rule(entry: Json, *statuses: Json) -> tuple[str, str]:
    """The rule that rolled the candidate back and its value: the first failed alert or
    check of the last analysis, else the engine's reason (a deadline, say) with no value."""
    if entry.get("reason") == "AnalysisFailed":
        for status in statuses:
            analysis = status.get("analysis") or {}
            for result in analysis.get("results") or []:
                if isinstance(result, dict) and result.get("outcome") == "Failed":
                    return str(result.get("name", "")), str(result.get("value", ""))
    return str(entry.get("reason", "")), ""


def carry(old: Json, new: Json, settings: Settings) -> Json:
    """``new`` (the status to write) with the write-back fields of every history entry:
    kept from ``old`` for entries seen before, filled in for new Promoted/RolledBack ones."""
    seen = {entry_key(h): h for h in history(old)}
    out = []
    for entry in history(new):
        entry = dict(entry)
        before = seen.get(entry_key(entry))
        if before is not None:
            entry.update({k: before[k] for k in CARRIED if k in before})
        elif entry.get("outcome") in OUTCOME_TAGS:
            entry.update(_fresh(old, new, entry, settings))
        out.append(entry)
    if out:
        new["history"] = out
    return new


def _fresh(old: Json, new: Json, entry: Json, settings: Settings) -> Json:
    revision = str(entry.get("revision", ""))
    model = _slot_model(new, revision) or _slot_model(old, revision)
    uri = str(model.get("bundleURI", ""))
    fields: Json = {"modelURI": uri} if uri else {}
    if entry.get("outcome") == "RolledBack":
        rule, value = _rule(entry, new, old)
        fields.update(rule=rule, value=value)
    tracking = str((model.get("mlflow") or {}).get("trackingURI", ""))
    if settings.enabled and tracking and _concrete(uri) is not None:
        fields[KEY] = {"state": PENDING, "trackingURI": tracking}
        if entry.get("outcome") == "Promoted":
            fields[KEY]["alias"] = settings.alias
    return fields


def _concrete(uri: str) -> tuple[str, str] | None:
    try:
        name, version, alias = c.split_models_uri(uri)
    except ValueError:
        return None
    return None if alias else (name, version)


def tags(entry: Json, deployment: str) -> tuple[tuple[str, str], ...]:
    """The version's tags for a history entry (``deployment`` is NAMESPACE/NAME)."""
    out = [
        (TAG_OUTCOME, OUTCOME_TAGS.get(str(entry.get("outcome", "")), "")),
        (TAG_TIME, str(entry.get("finishedAt", ""))),
        (TAG_DEPLOYMENT, deployment),
    ]
    if entry.get("outcome") == "RolledBack":
        out += [(TAG_RULE, str(entry.get("rule", ""))), (TAG_VALUE, str(entry.get("value", "")))]
    return tuple(out)


def pending(status: Json, deployment: str, now: datetime) -> list[WriteBack]:
    """The write-backs still to do, oldest first: entries ``pending``, and ``failed`` ones
    whose last attempt is ``RETRY_SECONDS`` old. Only the newest promotion moves the alias,
    so an older one retried late never moves it back."""
    entries = history(status)
    newest_promoted = next(
        (i for i, h in enumerate(entries) if h.get("outcome") == "Promoted" and KEY in h), None
    )
    out = []
    for index in reversed(range(len(entries))):
        entry = entries[index]
        wb = entry.get(KEY)
        if not isinstance(wb, dict) or wb.get("state") not in (PENDING, FAILED):
            continue
        if wb.get("state") == FAILED and not _retry_due(wb, now):
            continue
        concrete = _concrete(str(entry.get("modelURI", "")))
        if concrete is None:
            continue
        alias = str(wb.get("alias", "")) if index == newest_promoted else ""
        out.append(
            WriteBack(
                index=index,
                key=entry_key(entry),
                tracking_uri=str(wb.get("trackingURI", "")),
                name=concrete[0],
                version=concrete[1],
                tags=tags(entry, deployment),
                alias=alias,
            )
        )
    return out


def _retry_due(wb: Json, now: datetime) -> bool:
    try:
        at = datetime.fromisoformat(str(wb.get("at", "")).replace("Z", "+00:00"))
    except ValueError:
        return True
    return now - at >= timedelta(seconds=RETRY_SECONDS)


def settled(status: Json, key: tuple[str, str, str], state: str, message: str, at: str) -> Json:
    """The ``history`` patch that records the outcome of one write-back (the whole list: a
    merge patch replaces lists), or {} when the entry is gone from the history."""
    entries = [dict(h) for h in history(status)]
    for entry in entries:
        if entry_key(entry) == key and isinstance(entry.get(KEY), dict):
            entry[KEY] = {**entry[KEY], "state": state, "message": message, "at": at}
            return {"history": entries}
    return {}

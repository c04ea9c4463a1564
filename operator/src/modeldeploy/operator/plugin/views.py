"""The plugin's pure side: the status and history views, and the control values.

Pure functions of a ModelDeployment and its events (no client, no clock of their own), so
they are tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from modeldeploy.operator import defaults as d

Json = dict[str, Any]

EVENTS_SHOWN = 8
BAR_WIDTH = 40
CONDITION_ORDER = ("Ready", "Progressing", "Degraded", "Reconciling", "Stalled")
# Controls that need a rollout in progress, and the one that needs a rolled-back version.
NEEDS_ROLLOUT = ("promote", "promote-full", "abort")
NEEDS_ROLLBACK = ("retry",)


class PluginError(Exception):
    """A failure explained for the person at the terminal; printed without a traceback."""


# --- pure helpers: time, tables --------------------------------------------------------


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp as the apiserver writes it, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(text: str | None, now: datetime) -> str:
    """How long ago, kubectl style: 45s, 12m, 3h, 5d; '-' when unknown."""
    at = parse_time(text)
    if at is None:
        return "-"
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(start: str | None, end: str | None) -> str:
    """Length of an interval as 1h2m3s ('-' when either end is unknown)."""
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return "-"
    seconds = max(0, int((b - a).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or hours else "") + f"{secs}s"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns, the last one unpadded (kubectl's layout)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [str(row[-1])]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def weight_bar(weight: int, width: int = BAR_WIDTH) -> str:
    """The candidate's share of the traffic as a bar: [#####...............]."""
    weight = min(100, max(0, weight))
    filled = round(width * weight / 100)
    return "[" + "#" * filled + "." * (width - filled) + "]"


# --- pure views ---------------------------------------------------------------------------


def _slot_rows(status: Json) -> list[list[str]]:
    stable = status.get("stableSlot")
    candidate = status.get("candidateSlot")
    previous = status.get("previousSlot")
    rows = []
    for slot in d.SLOTS:
        record = (status.get("slots") or {}).get(slot) or {}
        if slot == stable:
            role, version = d.ROLE_STABLE, status.get("stableVersion") or record.get("version")
        elif slot == candidate:
            role = d.ROLE_CANDIDATE
            version = status.get("candidateVersion") or record.get("version")
        elif slot == previous:
            role, version = d.ROLE_PREVIOUS, record.get("version")
        else:
            role, version = "-", record.get("version")
        if not record and role == "-":
            continue
        rows.append([slot, role, version or "-", record.get("revision") or "-"])
    return rows


def _condition_line(status: Json) -> str:
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    parts = []
    for kind in [*CONDITION_ORDER, *sorted(set(conds) - set(CONDITION_ORDER))]:
        if kind in conds:
            c = conds[kind]
            reason = f" ({c['reason']})" if c.get("reason") else ""
            parts.append(f"{kind}={c.get('status', '?')}{reason}")
    return "  ".join(parts) if parts else "-"


def _event_time(event: Json) -> str:
    return (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def render_status(obj: Json, events: Sequence[Json], now: datetime) -> str:
    """The status view of one ModelDeployment: what ``status`` prints (and redraws)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    strategy = status.get("strategy") or next(iter(spec.get("strategy") or {}), "-")
    lines = [
        f"ModelDeployment {meta.get('namespace', '-')}/{meta.get('name', '-')}"
        f"   strategy {strategy}   model {(spec.get('model') or {}).get('name', '-')}"
    ]
    if not status:
        lines.append("Phase:       (no status yet: is the operator running?)")
        return "\n".join(lines) + "\n"
    phase = status.get("phase", "-")
    message = f"  {status['message']}" if status.get("message") else ""
    lines.append(f"Phase:       {phase}{message}")
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        lines.append(f"Generation:  {generation} (the operator has seen {observed}: catching up)")
    lines.append(
        f"Stable:      {status.get('stableVersion', '-')} in slot {status.get('stableSlot', '-')}"
    )
    if status.get("candidateVersion"):
        weight = int(status.get("canaryWeight") or 0)
        lines.append(
            f"Candidate:   {status['candidateVersion']} in slot {status.get('candidateSlot', '-')}"
        )
        lines.append(f"Weight:      {weight_bar(weight)} {weight}% to the candidate")
        lines.append(
            f"Step:        {status.get('currentStep', 0)}"
            + (
                f" (started {age(status.get('stepStartedAt'), now)} ago)"
                if status.get("stepStartedAt")
                else ""
            )
            + ("  PAUSED" if status.get("paused") else "")
            + (f": {status['pauseReason']}" if status.get("pauseReason") else "")
        )
    lines.append(f"Conditions:  {_condition_line(status)}")
    slots = _slot_rows(status)
    if slots:
        lines += ["", *table(["SLOT", "ROLE", "VERSION", "REVISION"], slots)]
    analysis = status.get("analysis") or {}
    if analysis:
        lines += [
            "",
            f"Analysis:    {analysis.get('outcome', '-')} "
            f"{age(analysis.get('lastSampleAt'), now)} ago"
            + (
                f", {analysis['passedSamples']} passed in a row"
                if analysis.get("passedSamples")
                else ""
            )
            + (f": {analysis['message']}" if analysis.get("message") else ""),
        ]
        if status.get("candidateVersion"):
            lines.append(
                f"Evidence:    {int(analysis.get('predictions') or 0)} predictions in this step"
            )
        results = analysis.get("results") or []
        if results:
            lines += table(
                ["KIND", "NAME", "VALUE", "OUTCOME", "AGE"],
                [
                    [
                        r.get("kind", "-"),
                        r.get("name", "-"),
                        r.get("value") or "-",
                        r.get("outcome", "-"),
                        age(r.get("at"), now),
                    ]
                    for r in results
                ],
                indent="  ",
            )
    lines += _retrain_lines(status, now)
    last = (status.get("history") or [None])[0]
    if last:
        lines += [
            "",
            f"Last rollout: {last.get('version', '-')} {last.get('outcome', '-')}"
            f" {age(last.get('finishedAt'), now)} ago"
            + (f" ({last['reason']}: {last['message']})" if last.get("message") else ""),
        ]
    recent = sorted(events, key=_event_time)[-EVENTS_SHOWN:]
    if recent:
        lines += ["", "Events:"]
        lines += table(
            ["AGE", "TYPE", "REASON", "MESSAGE"],
            [
                [
                    age(_event_time(e), now),
                    e.get("type", "-"),
                    e.get("reason", "-"),
                    (e.get("message") or "").replace("\n", " "),
                ]
                for e in recent
            ],
            indent="  ",
        )
    return "\n".join(lines) + "\n"


def _retrain_lines(status: Json, now: datetime) -> list[str]:
    """The retraining loop (``spec.retrain``): its phase, the run, the last run's outcome."""
    retrain = status.get("retrain") or {}
    if not retrain:
        return []
    message = f"  {retrain['message']}" if retrain.get("message") else ""
    lines = ["", f"Retrain:     {retrain.get('phase', '-')}{message}"]
    if retrain.get("held"):
        lines.append(f"Held:        {retrain['held']}")
    adopted = retrain.get("adopted")
    if isinstance(adopted, dict):  # no registry: what runs in place of the spec's bundle
        lines.append(f"Adopted:     {adopted.get('version', '-')} {adopted.get('uri', '-')}")
    last = (retrain.get("history") or [None])[0]
    if last:
        lines.append(
            f"Last run:    {last.get('id', '-')} {last.get('outcome', '-')}"
            f" {age(last.get('finishedAt'), now)} ago ({last.get('reason', '-')})"
        )
    return lines


def render_history(obj: Json) -> str:
    """The rollouts the status remembers, newest first."""
    history = (obj.get("status") or {}).get("history") or []
    name = (obj.get("metadata") or {}).get("name", "-")
    if not history:
        return f"{name}: no rollouts recorded yet\n"
    rows = [
        [
            h.get("version", "-"),
            h.get("outcome", "-"),
            h.get("reason", "-"),
            h.get("startedAt", "-"),
            duration(h.get("startedAt"), h.get("finishedAt")),
            registry_outcome(h),
            h.get("message", ""),
        ]
        for h in history
    ]
    head = ["VERSION", "OUTCOME", "REASON", "STARTED", "TOOK", "REGISTRY", "MESSAGE"]
    return "\n".join(table(head, rows)) + "\n"


def registry_outcome(entry: Json) -> str:
    """The REGISTRY column: what was written back to MLflow for this rollout (pending, done,
    failed; the alias a promotion moved), "-" when nothing is to be written."""
    wb = entry.get("writeBack")
    if not isinstance(wb, dict):
        return "-"
    state = str(wb.get("state", "-"))
    return f"{state}:{wb['alias']}" if wb.get("alias") else state


def control_value(verb: str, now: datetime, nonce: str) -> str:
    """The annotation value of one control request (unique, so the operator acts on it)."""
    if verb not in d.CONTROLS:
        raise ValueError(f"unknown control {verb!r}")
    return f"{verb}/{now.strftime('%Y%m%dT%H%M%S')}-{nonce}"


def check_control(verb: str, obj: Json) -> None:
    """Refuse a control that cannot apply now, saying why (the operator would ignore it)."""
    status = obj.get("status") or {}
    name = (obj.get("metadata") or {}).get("name", "")
    awaiting = (status.get("retrain") or {}).get("phase") == "AwaitingApproval"
    if verb == "retrain" and not (obj.get("spec") or {}).get("retrain"):
        raise PluginError(f"{name}: no spec.retrain: nothing to retrain")
    approves = verb == "promote" and awaiting  # a retrained version waits for approval
    if verb in NEEDS_ROLLOUT and not status.get("candidateVersion") and not approves:
        raise PluginError(
            f"{name}: no rollout in progress (stable "
            f"{status.get('stableVersion', '-')}, phase {status.get('phase', '-')})"
            f": nothing to {verb}"
        )
    if verb in NEEDS_ROLLBACK and not status.get("abortedRevision"):
        raise PluginError(f"{name}: nothing to retry: no rolled-back version")

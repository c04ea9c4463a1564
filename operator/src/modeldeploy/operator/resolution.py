"""Registry models, explicit and pinned: a models:/ template becomes a concrete one.

Before the engine runs, the handler replaces a ``models:/NAME@ALIAS`` (or ``NAME/VERSION``)
bundle URI by the version it resolves to, ``models:/NAME/V``, and ``spec.model.sha256`` by
the effective pin (the given digest or the version's ``modeldeploy.sha256`` tag). The
revision (what starts a rollout) is therefore the concrete version: an alias moved later is
a new revision and a new rollout, and a running slot's pods never change under it.

Pure (no I/O, the clock is passed in): ``settle`` takes the look-up as an async callable (the
operator's ``registry.RegistryClient.resolve``), so the decision is tested without a network.
Answers are cached per (tracking URI, URI) for ``CACHE_SECONDS``, failures too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modeldeploy.operator.model import Json, Spec, format_time
from modeldeploy.server.contract.registry import Resolved, effective_pin

CACHE_SECONDS = 30.0  # a reconcile loop reads the registry at most this often per URI
STATUS_KEY = "resolvedModel"
EVENT_REASON = "ModelSourceError"

Outcome = Resolved | str  # a resolution, or why there is none
Key = tuple[str, str]  # (tracking URI, requested URI)


class SourceError(Exception):
    """The registry could not say what a models:/ URI is (the message says why, no secret)."""


@dataclass
class ResolutionCache:
    """The registry's last answers, each kept ``ttl`` seconds."""

    ttl: float = CACHE_SECONDS
    entries: dict[Key, tuple[datetime, Outcome]] = field(default_factory=dict)

    def get(self, key: Key, now: datetime) -> Outcome | None:
        hit = self.entries.get(key)
        if hit is None or (now - hit[0]).total_seconds() >= self.ttl:
            return None
        return hit[1]

    def put(self, key: Key, outcome: Outcome, now: datetime) -> None:
        for old in [
            k for k, (at, _) in self.entries.items() if (now - at).total_seconds() >= self.ttl
        ]:
            del self.entries[old]
        self.entries[key] = (now, outcome)


@dataclass(frozen=True)
class Decision:
    """What the reconcile runs: ``spec`` (concrete), or None to apply nothing new; the
    ``status.resolvedModel`` to write (None: none); ``error`` when the registry failed."""

    spec: Spec | None
    record: Json | None
    error: str = ""


def concrete(spec: Spec, uri: str, pin: str, card_version: str = "") -> Spec:
    """``spec`` with its template's bundle URI and digest replaced, and its model version by
    the registry version's card version when it has one: the model server labels its
    metrics with the card's version, and the engine matches alerts and scrapes by the
    spec's, so after an alias moves the stable and the candidate still have each its own
    (``spec.model.version`` is the same string for both)."""
    model = dataclasses.replace(spec.template.model, bundle_uri=uri, sha256=pin)
    if card_version:
        model = dataclasses.replace(model, version=card_version)
    return dataclasses.replace(spec, template=dataclasses.replace(spec.template, model=model))


def _reusable(spec: Spec, previous: Any) -> bool:
    model = spec.template.model
    if not isinstance(previous, dict) or model.mlflow is None:
        return False
    given = model.sha256.lower().removeprefix("sha256:")
    return (
        previous.get("requested") == model.bundle_uri
        and previous.get("trackingURI") == model.mlflow.tracking_uri
        and bool(previous.get("uri"))
        and bool(previous.get("sha256"))
        and (not given or given == previous.get("sha256"))
    )


def _same(previous: Any, record: Json) -> bool:
    if not isinstance(previous, dict):
        return False
    return all(previous.get(k) == v for k, v in record.items() if k != "resolvedAt")


def decide(spec: Spec, previous: Any, outcome: Outcome, now: datetime) -> Decision:
    """The concrete spec for ``outcome``; on a failure the previous resolution of the same
    requested URI (the registry could not be read: keep running what was resolved), else
    nothing new (traffic stays on the stable)."""
    model = spec.template.model
    if model.mlflow is None:
        return Decision(spec, None)
    error = outcome if isinstance(outcome, str) else ""
    if isinstance(outcome, Resolved):
        try:
            pin = effective_pin(outcome, model.sha256)
        except ValueError as exc:
            error = str(exc).replace("--sha256", "spec.model.sha256")
        else:
            record = {
                "requested": model.bundle_uri,
                "trackingURI": model.mlflow.tracking_uri,
                "uri": outcome.uri,
                "version": outcome.version,
                "alias": outcome.alias,
                "sha256": pin,
                "resolvedAt": format_time(now),
            }
            if outcome.card_version:
                record["cardVersion"] = outcome.card_version
            if _same(previous, record):  # the same answer: keep when it was first resolved
                record["resolvedAt"] = previous.get("resolvedAt") or record["resolvedAt"]
            return Decision(concrete(spec, outcome.uri, pin, outcome.card_version), record)
    if _reusable(spec, previous):
        kept = {k: v for k, v in previous.items() if k != "message"}
        message = (
            f"the registry could not be read ({error}): still running {kept['uri']} "
            f"(resolved at {kept.get('resolvedAt', '?')})"
        )
        return Decision(
            concrete(spec, kept["uri"], kept["sha256"], str(kept.get("cardVersion") or "")),
            {**kept, "message": message},
            error,
        )
    return Decision(None, previous if isinstance(previous, dict) else None, error)


def failure_message(decision: Decision) -> str:
    """The status message of a failure with nothing to keep using."""
    return f"model source: {decision.error}; nothing new applied (traffic stays on the stable)"


async def settle(
    spec: Spec,
    status: Json,
    cache: ResolutionCache,
    resolve: Callable[[str, str], Awaitable[Resolved]],
    now: datetime,
) -> Decision:
    """Resolve ``spec``'s models:/ URI (through the cache) and decide (see ``decide``)."""
    model = spec.template.model
    if model.mlflow is None:
        return Decision(spec, None)
    key = (model.mlflow.tracking_uri, model.bundle_uri)
    outcome = cache.get(key, now)
    if outcome is None:
        try:
            outcome = await resolve(*key)
        except SourceError as exc:
            outcome = str(exc)
        cache.put(key, outcome, now)
    return decide(spec, status.get(STATUS_KEY), outcome, now)

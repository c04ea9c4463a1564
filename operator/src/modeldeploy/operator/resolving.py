"""The reconcile's resolution step (kopf side of ``resolution``): resolve a models:/ spec,
post the Warning Event and status message of a failure, and put ``status.resolvedModel``
into the status the reconcile writes. Kept out of ``handlers`` so that stays thin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import kopf

from modeldeploy.operator import defaults as d
from modeldeploy.operator.kube import Kube
from modeldeploy.operator.model import Json, Spec
from modeldeploy.operator.registry import RegistryClient
from modeldeploy.operator.resolution import (
    EVENT_REASON,
    STATUS_KEY,
    Decision,
    ResolutionCache,
    failure_message,
    settle,
)


async def resolve_spec(
    registry: RegistryClient,
    cache: ResolutionCache,
    kube: Kube,
    body: kopf.Body,
    raw: Json,
    spec: Spec,
    now: datetime,
) -> Decision | None:
    """The decision to reconcile with, or None when nothing new may be applied (then the
    status says why and a Warning Event was posted, once per message)."""
    decision = await settle(spec, raw, cache, registry.resolve, now)
    meta = body["metadata"]
    if decision.spec is None:
        message = failure_message(decision)
        if raw.get("message") != message:
            kopf.warn(body, reason=EVENT_REASON, message=message)
            await kube.patch_status(d.KIND, meta["namespace"], meta["name"], {"message": message})
        return None
    before: Any = raw.get(STATUS_KEY)
    kept = (decision.record or {}).get("message")
    if decision.error and kept and (not isinstance(before, dict) or before.get("message") != kept):
        kopf.warn(body, reason=EVENT_REASON, message=kept)
    return decision


def with_resolution(new_raw: Json, decision: Decision) -> Json:
    """The status to write, with ``resolvedModel`` as decided (none without a models:/ URI)."""
    new_raw.pop(STATUS_KEY, None)
    if decision.record is not None:
        new_raw[STATUS_KEY] = decision.record
    return new_raw

"""How kopf is set up for this operator: its storages, timeouts and peering.

One change from kopf's own storages: the diff-base is built without deep-copying what it then
drops. kopf builds an object's "essence" on every watch event to tell a spec change from the
rest: it deep-copies the whole body, then deletes the status and most of the metadata. Here
those are most of the body (the status's history, conditions and analysis; the metadata's
managedFields), and at 500 ModelDeployments that copy was a twentieth of the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, cast

import kopf

from modeldeploy.operator import defaults as d

# What kopf's essence keeps of the metadata, and what its storage keys are formed from.
ESSENCE_METADATA = ("name", "namespace", "labels", "annotations", "ownerReferences")


class EssenceDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff-base, fed the body without the parts its essence drops."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        if extra_fields:  # a handler watches a status field: kopf's own way, whole
            return super().build(body=body, extra_fields=extra_fields)
        return super().build(body=kopf.Body(cast(kopf.RawBody, trimmed(body))))


def trimmed(body: Any) -> dict[str, Any]:
    """The body with what kopf's essence keeps: no status, only some of the metadata."""
    out = {key: value for key, value in body.items() if key not in ("status", "metadata")}
    meta = body.get("metadata") or {}
    out["metadata"] = {key: meta[key] for key in ESSENCE_METADATA if key in meta}
    return out


def configure(settings: kopf.OperatorSettings, peering_lifetime: int) -> None:
    settings.persistence.finalizer = d.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=d.GROUP)
    settings.persistence.diffbase_storage = EssenceDiffBaseStorage(
        prefix=d.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.inactivity_timeout = 600
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    # a dead peer is ignored after this long: the fail-over time of two replicas
    settings.peering.lifetime = peering_lifetime

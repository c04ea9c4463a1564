"""The write-back's I/O (kopf side of ``writeback``): one background task per
ModelDeployment with ``spec.model.mlflow.writeBack.enabled``, which does the registry calls
the status says are pending and records how they went.

Woken by the reconcile that wrote a new pending entry, and every ``RETRY_SECONDS`` anyway
(a failed write-back is tried again then). The calls go to the tracking server with the
operator's own credentials (``registry.RegistryClient``, the same client that resolves
models:/ URIs), never the user's Secret; they are idempotent (setting a tag or an alias
twice is the same), so a crash between a call and the status write only repeats it. The
outcome is written into the history entry (``writeBack.state`` done or failed) under the
reconcile's per-object lock, and posted as an Event (``WrittenBack``, or ``WriteBackFailed``
once per distinct message); messages name the tracking server and the version, never a
credential.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from modeldeploy.operator import defaults as d
from modeldeploy.operator import writeback as wb
from modeldeploy.operator.kube import KubeError
from modeldeploy.operator.model import Json
from modeldeploy.operator.resolution import SourceError
from modeldeploy.operator.runtime import Runtime
from modeldeploy.server.contract import registry as reg

log = logging.getLogger("modeldeploy.operator.writeback")

EVENT_DONE = "WrittenBack"
EVENT_FAILED = "WriteBackFailed"


def requests(item: wb.WriteBack) -> list[reg.Request]:
    """The registry calls of one write-back: the tags first, then the alias, so a version
    the alias points to always says why."""
    out = [reg.set_tag_request(item.name, item.version, k, v) for k, v in item.tags]
    if item.alias:
        out.append(reg.set_alias_request(item.name, item.alias, item.version))
    return out


def wake(rt: Runtime, key: tuple[str, str], status: Json) -> None:
    """Called by the reconcile with the status it wrote: wake the task when there is work."""
    if any((h.get(wb.KEY) or {}).get("state") == wb.PENDING for h in wb.history(status)):
        event = rt.write_backs.get(key)
        if event is not None:
            event.set()


async def run(rt: Runtime, body: kopf.Body, stopped: Any) -> None:
    """The task's loop (a kopf daemon): until the object goes or the filter turns it off."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    event = rt.write_backs.setdefault(key, asyncio.Event())
    event.set()  # look once at start: a restarted operator finishes what was pending
    try:
        while not stopped:
            try:
                await asyncio.wait_for(event.wait(), timeout=wb.RETRY_SECONDS)
            except TimeoutError:
                # the watch's copy first: no read of the apiserver when nothing is due
                seen = dict(body.get("status") or {})
                if not wb.pending(seen, "", rt.now()):
                    continue
            event.clear()
            try:
                await write_pending(rt, body)
            except KubeError as exc:  # the status write failed: the next turn does it again
                log.warning("write-back of %s/%s not recorded: %s", *key, exc)
    finally:
        rt.write_backs.pop(key, None)


async def _read(rt: Runtime, ns: str, name: str) -> tuple[Json, str]:
    fresh = await rt.kube.get(d.KIND, ns, name) or {}
    rv = str((fresh.get("metadata") or {}).get("resourceVersion") or "")
    return dict(fresh.get("status") or {}), rv


async def write_pending(rt: Runtime, body: kopf.Body) -> None:
    """Do every pending write-back of one ModelDeployment, oldest first."""
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    status, _ = await _read(rt, ns, name)
    for item in wb.pending(status, f"{ns}/{name}", rt.now()):
        try:
            await rt.registry.write(item.tracking_uri, requests(item))
            state, message = wb.DONE, item.describe()
        except SourceError as exc:
            state, message = wb.FAILED, f"models:/{item.name}/{item.version}: {exc}"
        if await _record(rt, ns, name, item, state, message):
            if state == wb.DONE:
                kopf.event(body, type="Normal", reason=EVENT_DONE, message=message)
            else:
                kopf.event(body, type="Warning", reason=EVENT_FAILED, message=message)


async def _record(
    rt: Runtime, ns: str, name: str, item: wb.WriteBack, state: str, message: str
) -> bool:
    """Write the outcome into the entry, under the reconcile's lock and conditional on the
    resourceVersion read under it; True when it is news (worth an Event)."""
    async with rt.locks.setdefault((ns, name), asyncio.Lock()):
        status, rv = await _read(rt, ns, name)
        before = next(
            (h.get(wb.KEY) for h in status.get("history") or [] if wb.entry_key(h) == item.key),
            None,
        )
        at = rt.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = wb.settled(status, item.key, state, message, at)
        if not patch:
            return False
        res = await rt.kube.patch_status(d.KIND, ns, name, patch, rv or None)
        rt.written[(ns, name)] = (
            str((res.get("metadata") or {}).get("resourceVersion") or ""),
            {**status, **patch},
        )
    old = before if isinstance(before, dict) else {}
    return (old.get("state"), old.get("message")) != (state, message)

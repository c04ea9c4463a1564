"""A small Kubernetes client: apply, get, list, delete, patch, patch status, discovery.

The reconcile logic never sees it; the handlers do. It wraps the official (synchronous)
client's ``ApiClient`` in a pool of its own threads, with generic paths so one code path
serves every kind the operator owns. Writes use server-side apply with the field manager
``modeldeploy``; a 409 (a conflicting write) is retried a bounded number of times; a 410
(an expired list continuation) restarts the list.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Container, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from modeldeploy.operator import defaults as d
from modeldeploy.operator.lanes import Lanes

log = logging.getLogger("modeldeploy.operator.kube")
Json = dict[str, Any]

CONFLICT_RETRIES = 5
# Calls in flight at once. Each one waits on the apiserver (tens to hundreds of ms when it is
# loaded) while holding a thread; asyncio's default pool has cpu_count + 4 threads and the
# client's connection pool cpu_count * 5 connections, which at 500 ModelDeployments on two
# cores queued every reconcile behind the others' writes (seconds of analysis tick lag).
API_CONCURRENCY = 32
DISCOVERY_TTL = 60.0
PAGE = 500


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when there was none)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, sub: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


KINDS: dict[str, Kind] = {
    "Deployment": Kind("apps", "v1", "deployments"),
    "Service": Kind("", "v1", "services"),
    "PodDisruptionBudget": Kind("policy", "v1", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": Kind("autoscaling", "v2", "horizontalpodautoscalers"),
    "Pod": Kind("", "v1", "pods"),
    "Job": Kind("batch", "v1", "jobs"),
    "Event": Kind("", "v1", "events"),
    "HTTPRoute": Kind("gateway.networking.k8s.io", "v1", "httproutes"),
    "VirtualService": Kind("networking.istio.io", "v1beta1", "virtualservices"),
    "TraefikService": Kind("traefik.io", "v1alpha1", "traefikservices"),
    "PrometheusRule": Kind("monitoring.coreos.com", "v1", "prometheusrules"),
    d.KIND: Kind(d.GROUP, d.VERSION, d.PLURAL),
}


class Kube(Protocol):
    """What the handlers need from a cluster."""

    async def apply(self, obj: Json) -> Json: ...
    async def get(self, kind: str, namespace: str, name: str) -> Json | None: ...
    async def list(
        self, kind: str, namespace: str | None, label_selector: str = ""
    ) -> list[Json]: ...
    async def delete(self, kind: str, namespace: str, name: str) -> bool: ...
    async def patch(self, kind: str, namespace: str, name: str, patch: Json) -> Json: ...
    async def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Json,
        resource_version: str | None = None,
    ) -> Json: ...
    async def has_api(self, group: str, version: str, plural: str) -> bool: ...


class ApiClientKube:
    """``Kube`` over the official client's ApiClient (kubeconfig or in-cluster config)."""

    def __init__(self, api_client: Any, hurried: Container[Hashable] = frozenset()) -> None:
        """``hurried``: the callers (``lanes.calls_for``) whose calls go first (``Lanes``)."""
        self._api = api_client
        self._discovery: dict[str, tuple[float, set[str]]] = {}
        self._pool = ThreadPoolExecutor(API_CONCURRENCY, thread_name_prefix="kube")
        self.lanes = Lanes(API_CONCURRENCY, hurried)

    @classmethod
    def from_environment(
        cls, kubeconfig: str | None = None, hurried: Container[Hashable] = frozenset()
    ) -> ApiClientKube:
        from kubernetes import client, config

        cfg = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = API_CONCURRENCY  # one connection per thread
        return cls(client.ApiClient(cfg), hurried)

    # --- the raw call ------------------------------------------------------------------

    def _call_sync(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Json:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            method_, url, headers_, body_, _ = self._api.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params=headers,
                # JSON bodies are encoded by the client; apply-patch+yaml goes as text
                body=json.dumps(body) if body is not None and "yaml" in content_type else body,
                auth_settings=["BearerToken"],
            )
            resp = self._api.call_api(
                method_, url, header_params=headers_, body=body_, _request_timeout=30
            )
            raw = resp.read()
        except ApiException as exc:
            raise KubeError(int(exc.status or 0), _message(exc.body, exc.reason)) from None
        except Exception as exc:  # urllib3 errors: connection refused, timeouts
            raise KubeError(0, f"{type(exc).__name__}: {exc}") from None
        if resp.status >= 400:
            raise KubeError(resp.status, _message(raw, resp.reason))
        answer: Json = json.loads(raw) if raw else {}
        return answer

    async def _call(self, method: str, path: str, **kw: Any) -> Json:
        call = functools.partial(self._call_sync, method, path, **kw)
        async with self.lanes.slot():
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def _with_conflict_retry(self, method: str, path: str, **kw: Any) -> Json:
        for attempt in range(CONFLICT_RETRIES):
            try:
                return await self._call(method, path, **kw)
            except KubeError as exc:
                if exc.status != 409 or attempt == CONFLICT_RETRIES - 1:
                    raise
                log.info("conflict on %s %s, retrying (%d)", method, path, attempt + 1)
                await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the interface -----------------------------------------------------------------

    @staticmethod
    def kind_of(obj: Json) -> Kind:
        kind = KINDS.get(obj["kind"])
        if kind is None or kind.api_version != obj["apiVersion"]:
            raise KubeError(0, f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}")
        return kind

    async def apply(self, obj: Json) -> Json:
        """Server-side apply with our field manager; force: the operator owns these fields."""
        meta = obj["metadata"]
        path = self.kind_of(obj).path(meta.get("namespace"), meta["name"])
        return await self._with_conflict_retry(
            "PATCH",
            path,
            body=obj,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", d.FIELD_MANAGER), ("force", "true")],
        )

    async def get(self, kind: str, namespace: str, name: str) -> Json | None:
        try:
            return await self._call("GET", KINDS[kind].path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, kind: str, namespace: str | None, label_selector: str = "") -> list[Json]:
        """All items, page by page; a 410 (expired continue token) restarts the list."""
        path = KINDS[kind].path(namespace)
        for _ in range(3):
            items: list[Json] = []
            token = ""
            try:
                while True:
                    query = [("limit", str(PAGE))]
                    if label_selector:
                        query.append(("labelSelector", label_selector))
                    if token:
                        query.append(("continue", token))
                    page = await self._call("GET", path, query=query)
                    items += page.get("items") or []
                    token = (page.get("metadata") or {}).get("continue") or ""
                    if not token:
                        return items
            except KubeError as exc:
                if exc.status != 410:
                    raise
                log.info("list of %s expired (410), listing again", kind)
        raise KubeError(410, f"list of {kind} kept expiring")

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        try:
            await self._call(
                "DELETE",
                KINDS[kind].path(namespace, name),
                body={"propagationPolicy": "Background"},
            )
            return True
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise

    async def patch(self, kind: str, namespace: str, name: str, patch: Json) -> Json:
        return await self._with_conflict_retry(
            "PATCH",
            KINDS[kind].path(namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
            query=[("fieldManager", d.FIELD_MANAGER)],
        )

    async def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Json,
        resource_version: str | None = None,
    ) -> Json:
        """Merge-patch ``.status`` (``patch`` is the status part only).

        With ``resource_version`` the write is conditional: the apiserver answers 409 when
        the object changed since it was read, and the caller re-reads and decides again
        (retrying the same patch would only overwrite the other writer)."""
        if resource_version is None:
            return await self._with_conflict_retry(
                "PATCH",
                KINDS[kind].path(namespace, name, "status"),
                body={"status": patch},
                content_type="application/merge-patch+json",
                query=[("fieldManager", d.FIELD_MANAGER)],
            )
        return await self._call(
            "PATCH",
            KINDS[kind].path(namespace, name, "status"),
            body={"metadata": {"resourceVersion": resource_version}, "status": patch},
            content_type="application/merge-patch+json",
            query=[("fieldManager", d.FIELD_MANAGER)],
        )

    async def has_api(self, group: str, version: str, plural: str) -> bool:
        """Whether the cluster serves ``plural`` in group/version (cached for a minute)."""
        key = f"{group}/{version}"
        cached = self._discovery.get(key)
        if cached is None or time.monotonic() - cached[0] > DISCOVERY_TTL:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                found = {r["name"] for r in (await self._call("GET", path)).get("resources", [])}
            except KubeError as exc:
                if exc.status != 404:
                    raise
                found = set()
            cached = (time.monotonic(), found)
            self._discovery[key] = cached
        return plural in cached[1]


def _message(raw: Any, default: str | None) -> str:
    """The apiserver's Status message (what ``kubectl`` prints), else the HTTP reason."""
    try:
        return str(json.loads(raw or b"{}").get("message") or default or "")
    except (ValueError, AttributeError):
        return str(default or "")


def merge_patch(old: Json, new: Json) -> Json:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``."""
    out: Json = {}
    for key in old.keys() - new.keys():
        out[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = merge_patch(before, value)
            if sub:
                out[key] = sub
        elif value != before or key not in old:
            out[key] = value
    return out

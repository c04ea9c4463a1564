"""The operator's MLflow Model Registry client: resolves a models:/ URI to a concrete version,
its digest tag and where its files are, with the protocol of ``modeldeploy.server.contract
.registry`` over aiohttp.

One attempt per call, under a timeout: a failure is a ``SourceError`` and the next reconcile
tries again. Credentials are the operator's own, from its environment under MLflow's names
(``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``; the
chart fills them from a Secret): the operator never reads a user's Secret. No message carries
a credential, only the names of the variables it came from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from modeldeploy.operator.resolution import SourceError
from modeldeploy.server.contract import registry as reg
from modeldeploy.server.contract import sources as c

TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Credentials:
    """Basic auth or a bearer token for the tracking server (never in a ``repr``)."""

    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Credentials:
        return cls(
            environ.get(c.ENV_MLFLOW_USERNAME, ""),
            environ.get(c.ENV_MLFLOW_PASSWORD, ""),
            environ.get(c.ENV_MLFLOW_TOKEN, ""),
        )

    def headers(self) -> dict[str, str]:
        value = reg.authorization(self.username, self.password, self.token)
        return {"Authorization": value} if value else {}

    def describe(self) -> str:
        """What was sent, by the variables' names only."""
        return reg.describe_credentials(self.username, self.token)


class _Answer(SourceError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RegistryClient:
    """Resolves models:/ URIs against any tracking server (one session, made on first use)."""

    def __init__(
        self, credentials: Credentials | None = None, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self.credentials = credentials or Credentials.from_env(os.environ)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"RegistryClient({self.credentials.describe()})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, base: str, req: reg.Request) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "modeldeploy-operator"})
        what = f"{req.method} {base}{req.path}"
        post = req.method == "POST"
        try:
            async with self._session.request(
                req.method,
                base + req.path,
                params=None if post else req.params,
                json=req.params if post else None,
                headers=self.credentials.headers(),
                timeout=self.timeout,
                allow_redirects=False,
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            detail = type(exc).__name__ + (f": {exc}" if str(exc) else " (timeout)")
            raise SourceError(f"the tracking server {base} could not be read: {detail}") from None
        if status in (401, 403):
            verdict = "unauthorized" if status == 401 else "forbidden"
            raise SourceError(
                f"{what}: {verdict} by the tracking server (HTTP {status}); the operator sent "
                f"{self.credentials.describe()} (set them with the chart's "
                "registry.credentialsSecret)"
            )
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        if status != 200:
            code = str(answer.get("error_code", ""))
            raise _Answer(status, f"{what}: HTTP {status} {code}".rstrip())
        return answer

    async def resolve(self, tracking_uri: str, uri: str) -> reg.Resolved:
        """The concrete version ``uri`` names on ``tracking_uri``; ``SourceError`` saying why
        not (unknown model, version or alias; refused; unreachable)."""
        try:
            name, version, alias = c.split_models_uri(uri)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        base = tracking_uri.rstrip("/")
        try:
            got = await self._call(base, reg.lookup_request(name, version, alias))
        except _Answer as exc:
            if exc.status >= 500 or exc.status == 429:
                raise SourceError(str(exc)) from None
            exists = await self._model_exists(base, name)
            where = f"tracking server {base}"
            message = reg.lookup_failure(
                uri, name, version, alias, where, exc.status, str(exc), exists
            )
            raise SourceError(message or str(exc)) from None
        version, tagged = reg.parse_lookup(got, version)
        files = await self._call(base, reg.download_uri_request(name, version))
        where = reg.parse_download_uri(files)
        return reg.Resolved(name, version, alias, where, tagged, reg.parse_card_version(got))

    async def write(self, tracking_uri: str, requests: list[reg.Request]) -> None:
        """Send the write-back's requests in order (tags, then the alias); ``SourceError``
        at the first refused or failed one (they are idempotent: all are sent again)."""
        base = tracking_uri.rstrip("/")
        for req in requests:
            try:
                await self._call(base, req)
            except _Answer as exc:
                raise SourceError(str(exc)) from None

    async def _model_exists(self, base: str, name: str) -> bool:
        try:
            await self._call(base, reg.model_request(name))
        except _Answer as exc:
            if exc.status == 404:
                return False
            raise SourceError(str(exc)) from None
        return True

"""models:/NAME/VERSION and models:/NAME@ALIAS: bundles in an MLflow Model Registry.

Standard library only (the server image has no mlflow), through ``mlflow_api.Client``.
``resolve`` turns the URI into one concrete version (an alias is looked up first), reads that
version's tags and where its files are (``get-download-uri``, an ``mlflow-artifacts:/``
URI); ``MLflowSource.stage`` lists them recursively and downloads each one through the
tracking server's artifacts proxy.

A version is never fetched unpinned: the digest is ``--sha256`` when given, else the
version's ``modeldeploy.sha256`` tag (written by ``modeldeploy register``); without either,
or when the two differ, it is refused before any file is downloaded (``MLflowSource.pin``).
Unknown models, versions and aliases, 401 and 403 fail at once with a message saying which.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from modeldeploy.server.contract import registry as reg
from modeldeploy.server.contract import sources as c
from modeldeploy.server.contract.registry import Resolved as Resolved
from modeldeploy.server.sources.base import FetchError, Retry
from modeldeploy.server.sources.mlflow_api import Auth as Auth
from modeldeploy.server.sources.mlflow_api import Client, RegistryError, artifact_path
from modeldeploy.server.sources.mlflow_api import MLflowSettings as MLflowSettings


def _get(client: Client, req: reg.Request) -> dict[str, Any]:
    return client.call("GET", req.endpoint, **req.params)


def _model_exists(client: Client, name: str) -> bool:
    try:
        _get(client, reg.model_request(name))
    except RegistryError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def resolve(uri: str, settings: MLflowSettings, retry: Retry | None = None) -> Resolved:
    """The concrete version ``uri`` names, its digest tag and where its files are."""
    try:
        name, version, alias = c.split_models_uri(uri)
    except ValueError as exc:
        raise FetchError(str(exc)) from None
    client = Client(settings, retry or Retry())
    where = f"tracking server {client.base}"
    try:
        got = _get(client, reg.lookup_request(name, version, alias))
    except RegistryError as exc:
        exists = _model_exists(client, name)
        message = reg.lookup_failure(uri, name, version, alias, where, exc.status, str(exc), exists)
        if message is None:
            raise
        raise FetchError(message) from None
    version, tagged = reg.parse_lookup(got, version)
    where_files = _get(client, reg.download_uri_request(name, version))
    files = reg.parse_download_uri(where_files)
    return Resolved(name, version, alias, files, tagged, reg.parse_card_version(got))


def effective_pin(resolved: Resolved, given: str) -> str:
    """The digest to check: ``given`` or the version's tag; refuse neither or a disagreement."""
    try:
        return reg.effective_pin(resolved, given)
    except ValueError as exc:
        raise FetchError(str(exc)) from None


class MLflowSource:
    """A registry version: resolved (and its pin settled) once, then its files staged."""

    def __init__(self, uri: str, settings: MLflowSettings) -> None:
        try:
            c.split_models_uri(uri)
        except ValueError as exc:
            raise FetchError(str(exc)) from None
        self.uri = uri
        self.settings = settings
        self.resolved: Resolved | None = None

    def __repr__(self) -> str:
        return f"MLflowSource({self.uri!r}, {self.settings!r})"

    def pin(self, given: str, retry: Retry) -> str:
        """Resolve the version; the digest ``fetch`` must check (see ``effective_pin``)."""
        self.resolved = resolve(self.uri, self.settings, retry)
        return effective_pin(self.resolved, given)

    def stage(self, work: Path, retry: Retry) -> Path:
        resolved = self.resolved or resolve(self.uri, self.settings, retry)
        client = Client(self.settings, retry)
        root = artifact_path(resolved.download_uri)
        files = client.list_files(root)
        if not files:
            raise FetchError(f"{resolved.uri}: no files at {resolved.download_uri}")
        folder = work / "objects"
        folder.mkdir()
        for rel in files:
            parts = rel.split("/")
            if any(p in ("", ".", "..") for p in parts):
                raise FetchError(f"{resolved.uri}: refusing file {rel!r} (outside the bundle)")
            target = folder / PurePosixPath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download(f"{root}/{rel}", target)
        return folder

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

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modeldeploy.server.contract import sources as c
from modeldeploy.server.sources.base import FetchError, Retry
from modeldeploy.server.sources.mlflow_api import Auth as Auth
from modeldeploy.server.sources.mlflow_api import Client, RegistryError, artifact_path
from modeldeploy.server.sources.mlflow_api import MLflowSettings as MLflowSettings

_DIGEST = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Resolved:
    """One concrete registry version (what the operator records in status)."""

    name: str
    version: str
    alias: str  # "" when the URI named the version
    download_uri: str  # where its files are, mlflow-artifacts:/...
    sha256: str  # the digest tag's value, "" when the version has none

    @property
    def uri(self) -> str:
        return f"{c.MODELS_SCHEME}{self.name}/{self.version}"


def _model_exists(client: Client, name: str) -> bool:
    try:
        client.call("GET", "registered-models/get", name=name)
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
        if alias:
            got = client.call("GET", "registered-models/alias", name=name, alias=alias)
        else:
            got = client.call("GET", "model-versions/get", name=name, version=version)
    except RegistryError as exc:
        if not _model_exists(client, name):
            raise FetchError(f"{uri}: unknown model {name!r} on the {where}") from None
        if alias:
            raise FetchError(f"{uri}: model {name!r} has no alias {alias!r} ({exc})") from None
        if exc.status == 404:
            raise FetchError(f"{uri}: model {name!r} has no version {version}") from None
        raise
    found = got.get("model_version", {})
    version = str(found.get("version", version))
    tags = {t.get("key"): t.get("value", "") for t in found.get("tags", [])}
    where_files = client.call("GET", "model-versions/get-download-uri", name=name, version=version)
    return Resolved(
        name, version, alias, str(where_files.get("artifact_uri", "")), tags.get(c.TAG_SHA256, "")
    )


def effective_pin(resolved: Resolved, given: str) -> str:
    """The digest to check: ``given`` or the version's tag; refuse neither or a disagreement."""
    tagged = resolved.sha256.strip().lower().removeprefix("sha256:")
    wanted = given.strip().lower().removeprefix("sha256:")
    if resolved.sha256 and not _DIGEST.match(resolved.sha256.strip()):
        raise FetchError(f"{resolved.uri}: tag {c.TAG_SHA256} is not a sha256: refusing it")
    if wanted and tagged and wanted != tagged:
        raise FetchError(
            f"{resolved.uri}: --sha256 {wanted} disagrees with the version's tag "
            f"{c.TAG_SHA256}={tagged}: refusing it"
        )
    if not (wanted or tagged):
        raise FetchError(
            f"{resolved.uri}: the version has no {c.TAG_SHA256} tag and no --sha256 was given: "
            "refusing to fetch an unpinned bundle (register it with `modeldeploy register`, "
            "or pass --sha256)"
        )
    return wanted or tagged


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

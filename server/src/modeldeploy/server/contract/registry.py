"""The MLflow Model Registry protocol both halves speak, as pure code (no I/O).

The init container (``modeldeploy fetch``, urllib) and the operator (aiohttp) each do their
own requests; what to ask, how to read the answers, the messages of a failed look-up and the
pin of a version are here, once. Standard library only, like the rest of the contract.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any, Final

from modeldeploy.server.contract import sources as c

API: Final = "/api/2.0/mlflow/"
_DIGEST = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Resolved:
    """One concrete registry version (what the operator records in status)."""

    name: str
    version: str
    alias: str  # "" when the URI named the version
    download_uri: str  # where its files are, mlflow-artifacts:/...
    sha256: str  # the digest tag's value, "" when the version has none
    # The card's own version string (the tag ``register`` writes), "" when untagged: what the
    # model server reports as its ``version`` label, so what alerts are matched by.
    card_version: str = ""

    @property
    def uri(self) -> str:
        return f"{c.MODELS_SCHEME}{self.name}/{self.version}"


@dataclass(frozen=True)
class Request:
    """A call under ``/api/2.0/mlflow/``: the endpoint and its parameters (the query of a
    GET, the JSON body of a POST)."""

    endpoint: str
    params: dict[str, str] = field(default_factory=dict)
    method: str = "GET"

    @property
    def path(self) -> str:
        return API + self.endpoint


def model_request(name: str) -> Request:
    """Does the registered model exist (to tell an unknown model from an unknown version)."""
    return Request("registered-models/get", {"name": name})


def lookup_request(name: str, version: str, alias: str) -> Request:
    """The version an alias points to, or the version itself (its tags are in the answer)."""
    if alias:
        return Request("registered-models/alias", {"name": name, "alias": alias})
    return Request("model-versions/get", {"name": name, "version": version})


def download_uri_request(name: str, version: str) -> Request:
    return Request("model-versions/get-download-uri", {"name": name, "version": version})


def set_alias_request(name: str, alias: str, version: str) -> Request:
    """Point ``alias`` at ``version`` (MLflow moves it from wherever it was)."""
    return Request(
        "registered-models/alias", {"name": name, "alias": alias, "version": version}, "POST"
    )


def set_tag_request(name: str, version: str, key: str, value: str) -> Request:
    """Set (or overwrite) one tag of a model version."""
    params = {"name": name, "version": version, "key": key, "value": value}
    return Request("model-versions/set-tag", params, "POST")


def parse_lookup(answer: dict[str, Any], version: str) -> tuple[str, str]:
    """(version, digest tag) from a ``lookup_request`` answer (``version`` if it has none)."""
    found = answer.get("model_version") or {}
    tags = {t.get("key"): t.get("value", "") for t in found.get("tags") or []}
    return str(found.get("version", version)), str(tags.get(c.TAG_SHA256, ""))


def parse_card_version(answer: dict[str, Any]) -> str:
    """The ``modeldeploy.card_version`` tag of a ``lookup_request`` answer ("" without)."""
    found = answer.get("model_version") or {}
    tags = {t.get("key"): t.get("value", "") for t in found.get("tags") or []}
    return str(tags.get(c.TAG_MODEL_VERSION, ""))


def parse_download_uri(answer: dict[str, Any]) -> str:
    return str(answer.get("artifact_uri", ""))


def lookup_failure(
    uri: str,
    name: str,
    version: str,
    alias: str,
    where: str,
    status: int,
    detail: str,
    exists: bool,
) -> str | None:
    """The message of a failed ``lookup_request`` (a 4xx other than 401/403), given whether
    the model exists; None when the answer says nothing was missing (the caller raises it)."""
    if not exists:
        return f"{uri}: unknown model {name!r} on the {where}"
    if alias:
        return f"{uri}: model {name!r} has no alias {alias!r} ({detail})"
    if status == 404:
        return f"{uri}: model {name!r} has no version {version}"
    return None


def effective_pin(resolved: Resolved, given: str) -> str:
    """The digest to check: ``given`` or the version's tag. ``ValueError`` when there is
    neither, when the tag is not a digest, or when the two disagree."""
    tagged = resolved.sha256.strip().lower().removeprefix("sha256:")
    wanted = given.strip().lower().removeprefix("sha256:")
    if resolved.sha256 and not _DIGEST.match(resolved.sha256.strip()):
        raise ValueError(f"{resolved.uri}: tag {c.TAG_SHA256} is not a sha256: refusing it")
    if wanted and tagged and wanted != tagged:
        raise ValueError(
            f"{resolved.uri}: --sha256 {wanted} disagrees with the version's tag "
            f"{c.TAG_SHA256}={tagged}: refusing it"
        )
    if not (wanted or tagged):
        raise ValueError(
            f"{resolved.uri}: the version has no {c.TAG_SHA256} tag and no --sha256 was given: "
            "refusing to fetch an unpinned bundle (register it with `modeldeploy register`, "
            "or pass --sha256)"
        )
    return wanted or tagged


def authorization(username: str, password: str, token: str) -> str:
    """The ``Authorization`` header for MLflow's credentials: basic auth when a username is
    set, else a bearer token, else "" (what both halves send to a tracking server)."""
    if username:
        return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Bearer {token}" if token else ""


def describe_credentials(username: str, token: str) -> str:
    """What ``authorization`` sent, by the variables' names only (never a secret)."""
    if username:
        return f"basic auth from ${c.ENV_MLFLOW_USERNAME} and ${c.ENV_MLFLOW_PASSWORD}"
    if token:
        return f"a bearer token from ${c.ENV_MLFLOW_TOKEN}"
    return "no credentials"

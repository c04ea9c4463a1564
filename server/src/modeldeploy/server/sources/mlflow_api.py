"""A small client of the MLflow tracking server's REST API (standard library only): JSON
calls under ``/api/2.0/mlflow/``, and listing, downloading and uploading files through its
artifacts proxy (``/api/2.0/mlflow-artifacts/artifacts``, a server run with
``--serve-artifacts``). Used by the models:/ source and by ``modeldeploy register``.

Credentials come from the environment only, under MLflow's own names
(``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``); no
message or ``repr`` carries them. Connection errors, 429 and 5xx are ``Retryable`` (each call
runs under the caller's ``Retry``); other 4xx are not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldeploy.server.contract import registry
from modeldeploy.server.contract import sources as c
from modeldeploy.server.sources.base import FetchError, Retry, Retryable

CHUNK = 1 << 20
MAX_FILES = 1000  # files in one model version
API = "/api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PROXIED = "mlflow-artifacts:"
TRACKING_URI_PATTERN = c.TRACKING_URI_PATTERN


@dataclass(frozen=True)
class Auth:
    """Basic auth or a bearer token for the tracking server."""

    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Auth | None:
        user = environ.get(c.ENV_MLFLOW_USERNAME, "")
        password = environ.get(c.ENV_MLFLOW_PASSWORD, "")
        token = environ.get(c.ENV_MLFLOW_TOKEN, "")
        if bool(user) != bool(password):
            have, lack = (
                (c.ENV_MLFLOW_USERNAME, c.ENV_MLFLOW_PASSWORD)
                if user
                else (c.ENV_MLFLOW_PASSWORD, c.ENV_MLFLOW_USERNAME)
            )
            raise FetchError(f"${have} is set but ${lack} is empty (basic auth needs both)")
        if not (user or token):
            return None
        return cls(user, password, token)

    def header(self) -> str:
        return registry.authorization(self.username, self.password, self.token)

    def describe(self) -> str:
        """What was sent, by the variables' names only."""
        return registry.describe_credentials(self.username, self.token)


@dataclass(frozen=True)
class MLflowSettings:
    """The tracking server (``http(s)://HOST[:PORT][/PATH]``) and its credentials."""

    tracking_uri: str = ""
    auth: Auth | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.tracking_uri and not re.match(TRACKING_URI_PATTERN, self.tracking_uri):
            # A URI with user info is not echoed: it may hold a password.
            shown = "" if "@" in self.tracking_uri else f" {self.tracking_uri!r}"
            raise FetchError(
                f"the tracking URI{shown} must be http(s)://HOST[:PORT][/PATH] "
                f"(no user info: credentials come from ${c.ENV_MLFLOW_USERNAME} and "
                f"${c.ENV_MLFLOW_PASSWORD} or ${c.ENV_MLFLOW_TOKEN})"
            )

    @property
    def configured(self) -> bool:
        return bool(self.tracking_uri)

    @classmethod
    def from_env(
        cls, tracking_uri: str, environ: Mapping[str, str] | None = None
    ) -> MLflowSettings:
        return cls(tracking_uri, Auth.from_env(os.environ if environ is None else environ))


class RegistryError(FetchError):
    """A 4xx other than 401/403, with MLflow's error code (to tell what was not found)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class Client:
    """JSON calls and file transfers against one tracking server, each under ``retry``."""

    def __init__(self, settings: MLflowSettings, retry: Retry) -> None:
        if not settings.tracking_uri:
            raise FetchError(
                f"a models:/ URI needs the tracking server: pass {c.FLAG_MLFLOW_TRACKING_URI}"
            )
        self.base = settings.tracking_uri.rstrip("/")
        self.auth = settings.auth
        self.retry = retry

    def __repr__(self) -> str:
        return f"Client({self.base!r})"

    def _request(
        self, method: str, path: str, data: bytes | None = None, content_type: str = ""
    ) -> urllib.request.Request:
        headers = {"User-Agent": "modeldeploy"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.auth is not None:
            headers["Authorization"] = self.auth.header()
        return urllib.request.Request(self.base + path, data=data, headers=headers, method=method)

    def _error(self, exc: urllib.error.HTTPError, what: str) -> Exception:
        try:
            answer = json.loads(exc.read() or b"{}")
        except (ValueError, OSError):
            answer = {}
        code = str(answer.get("error_code", "")) if isinstance(answer, dict) else ""
        message = str(answer.get("message", "")) if isinstance(answer, dict) else ""
        detail = f"HTTP {exc.code} {code or exc.reason}" + (f": {message}" if message else "")
        if exc.code >= 500 or exc.code == 429:
            return Retryable(detail)
        if exc.code in (401, 403):
            sent = self.auth.describe() if self.auth else "no credentials"
            verdict = "unauthorized" if exc.code == 401 else "forbidden"
            return FetchError(
                f"{what}: {verdict} by the tracking server {self.base} ({detail}); the request "
                f"carried {sent}"
            )
        return RegistryError(exc.code, code, f"{what}: {detail}")

    def _open(self, req: urllib.request.Request, what: str) -> Any:
        try:
            return urllib.request.urlopen(req, timeout=self.retry.timeout)
        except urllib.error.HTTPError as exc:
            raise self._error(exc, what) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise Retryable(str(getattr(exc, "reason", exc))) from None

    def call(self, method: str, endpoint: str, **params: Any) -> dict[str, Any]:
        """``method`` ``/api/2.0/mlflow/ENDPOINT``: query parameters for GET, JSON otherwise."""
        what = f"{method} {self.base}{API}{endpoint}"
        path, data = API + endpoint, None
        if method == "GET":
            path += "?" + urllib.parse.urlencode(params)
        else:
            data = json.dumps(params).encode()

        def once() -> dict[str, Any]:
            req = self._request(method, path, data, "application/json" if data else "")
            with self._open(req, what) as resp:
                answer = json.loads(resp.read() or b"{}")
            return answer if isinstance(answer, dict) else {}

        return self.retry.run(what, once)

    def list_files(self, root: str) -> list[str]:
        """Every file under the artifact path ``root``, relative to it, recursively."""
        files: list[str] = []
        folders = [""]
        while folders:
            rel = folders.pop()
            path = f"{root}/{rel}".rstrip("/")
            what = f"GET {self.base}{ARTIFACTS}?path={path}"

            def once(path: str = path, what: str = what) -> Any:
                query = urllib.parse.urlencode({"path": path})
                with self._open(self._request("GET", f"{ARTIFACTS}?{query}"), what) as resp:
                    return json.loads(resp.read() or b"{}")

            for entry in self.retry.run(what, once).get("files", []):
                name = f"{rel}/{entry['path']}".lstrip("/")
                (folders if entry.get("is_dir") else files).append(name)
            if len(files) > MAX_FILES:
                raise FetchError(f"{self.base}: more than {MAX_FILES} files under {root}")
        return sorted(files)

    def download(self, path: str, target: Path) -> None:
        what = f"GET {self.base}{ARTIFACTS}/{path}"
        quoted = urllib.parse.quote(path)

        def once() -> None:
            req = self._request("GET", f"{ARTIFACTS}/{quoted}")
            with self._open(req, what) as resp, open(target, "wb") as out:
                shutil.copyfileobj(resp, out, CHUNK)

        self.retry.run(what, once)

    def upload(self, path: str, source: Path) -> None:
        what = f"PUT {self.base}{ARTIFACTS}/{path}"
        quoted = urllib.parse.quote(path)

        def once() -> None:
            data = source.read_bytes()
            req = self._request("PUT", f"{ARTIFACTS}/{quoted}", data, "application/octet-stream")
            with self._open(req, what) as resp:
                resp.read()

        self.retry.run(what, once)


def artifact_path(download_uri: str) -> str:
    """``mlflow-artifacts:/PATH`` (or ``mlflow-artifacts://HOST/PATH``) -> ``PATH``."""
    parsed = urllib.parse.urlparse(download_uri)
    if parsed.scheme != PROXIED.rstrip(":"):
        raise FetchError(
            f"the registry keeps this version's files at {download_uri}, not behind its "
            f"artifacts proxy ({PROXIED}/...): start the tracking server with --serve-artifacts"
        )
    path = parsed.path.strip("/")
    if not path or any(p in ("", ".", "..") for p in path.split("/")):
        raise FetchError(f"refusing the download URI {download_uri!r}")
    return path

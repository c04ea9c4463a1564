"""How the server's halves reach S3: settings, credentials and a botocore client, shared by
``modeldeploy fetch`` (``sources.s3``) and the labelled-data store (``labelled.sinks``).

Credentials come from the environment only (the variables in
``modeldeploy.server.contract.sources``, which the pod spec fills from a Secret), and nothing
else: no credential chain, so no metadata service, no shared files, nothing outside what the
ModelDeployment names. No message, ``repr`` or log line carries them. Settings that are wrong
raise ``FetchError`` (the message says which and why, never a secret).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.server.contract import sources as c
from modeldeploy.server.sources.base import FetchError


@dataclass(frozen=True)
class Credentials:
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Credentials | None:
        """The credentials in ``environ``; None when neither key is set."""
        key_id = environ.get(c.ENV_S3_ACCESS_KEY_ID, "")
        secret = environ.get(c.ENV_S3_SECRET_ACCESS_KEY, "")
        if not key_id and not secret:
            return None
        if not (key_id and secret):
            have, lack = (
                (c.ENV_S3_ACCESS_KEY_ID, c.ENV_S3_SECRET_ACCESS_KEY)
                if key_id
                else (c.ENV_S3_SECRET_ACCESS_KEY, c.ENV_S3_ACCESS_KEY_ID)
            )
            raise FetchError(
                f"${have} is set but ${lack} is empty (the credentials Secret needs both "
                f"{c.SECRET_ACCESS_KEY_ID} and {c.SECRET_SECRET_ACCESS_KEY})"
            )
        return cls(key_id, secret, environ.get(c.ENV_S3_SESSION_TOKEN, ""))


@dataclass(frozen=True)
class S3Settings:
    """Where and how to reach S3. ``path_style`` None: path-style with an endpoint (what
    S3-compatible servers expect), virtual-hosted on AWS."""

    endpoint: str = ""
    region: str = ""
    path_style: bool | None = None
    credentials: Credentials | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            if self.endpoint:
                c.check_endpoint(self.endpoint)
            if self.region:
                c.check_region(self.region)
        except ValueError as exc:
            raise FetchError(str(exc)) from None

    @property
    def configured(self) -> bool:
        """Any S3-only setting given (they make no sense for another source)."""
        return bool(self.endpoint or self.region or self.path_style is not None)

    @classmethod
    def from_env(
        cls,
        endpoint: str = "",
        region: str = "",
        path_style: bool | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> S3Settings:
        creds = Credentials.from_env(os.environ if environ is None else environ)
        return cls(endpoint, region, path_style, creds)

    @property
    def addressing(self) -> str:
        if self.path_style is None:
            return "path" if self.endpoint else "auto"
        return "path" if self.path_style else "virtual"


def make_client(settings: S3Settings, timeout: float, agent: str) -> Any:
    """A botocore S3 client with only ``settings``' credentials (or unsigned) and one attempt
    per call (callers bound their own retries); ``agent`` tells the server who is calling."""
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.credentials import CredentialResolver

    session = botocore.session.Session()
    # No credential chain: only what the environment variables above hold, or nothing.
    session.register_component("credential_provider", CredentialResolver(providers=[]))
    creds = settings.credentials
    config = Config(
        region_name=settings.region or c.DEFAULT_S3_REGION,
        signature_version="s3v4" if creds else UNSIGNED,
        s3={"addressing_style": settings.addressing},
        retries={"total_max_attempts": 1},  # the caller's retry is the only retry
        connect_timeout=timeout,
        read_timeout=timeout,
        user_agent_extra=agent,
    )
    return session.create_client(
        "s3",
        endpoint_url=settings.endpoint or None,
        aws_access_key_id=creds.access_key_id if creds else None,
        aws_secret_access_key=creds.secret_access_key if creds else None,
        aws_session_token=(creds.session_token or None) if creds else None,
        config=config,
    )


def error_detail(exc: Any) -> tuple[int, str, str]:
    """(HTTP status, S3 error code, "HTTP 403 AccessDenied: message") of a botocore
    ``ClientError``: what a log line may say about a failed call (no credentials in it)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = str(error.get("Message", ""))
    return status, code, f"HTTP {status} {code}".rstrip() + (f": {message}" if message else "")


def add_s3_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """The S3 flags of every command that reads or writes S3 (``fetch``, ``serve``'s
    labelled-data store, ``labelled-data``, ``retrain``, ``gate``): the same names
    everywhere, so the operator builds them one way. Credentials are never flags. Unset
    flags stay out of the namespace (the defaults are in the help, for any formatter): read
    them back with ``s3_flags``."""
    group = parser.add_argument_group(title)
    group.add_argument(
        c.FLAG_S3_ENDPOINT,
        dest="s3_endpoint",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="an S3-compatible server, http(s)://HOST[:PORT] (default: AWS)",
    )
    group.add_argument(
        c.FLAG_S3_REGION,
        dest="s3_region",
        default=argparse.SUPPRESS,
        metavar="REGION",
        help=f"the region requests are signed for (default: {c.DEFAULT_S3_REGION})",
    )
    group.add_argument(
        c.FLAG_S3_PATH_STYLE,
        dest="s3_path_style",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="path-style (ENDPOINT/BUCKET/KEY) or virtual-hosted (BUCKET.ENDPOINT/KEY) "
        f"addressing (default: path-style with {c.FLAG_S3_ENDPOINT}, virtual-hosted on AWS)",
    )


def s3_flags(args: argparse.Namespace) -> tuple[str, str, bool | None]:
    """The flags of ``add_s3_arguments``: (endpoint, region, path style)."""
    return (
        getattr(args, "s3_endpoint", ""),
        getattr(args, "s3_region", ""),
        getattr(args, "s3_path_style", None),
    )


def settings_from_args(args: argparse.Namespace) -> S3Settings:
    """The flags of ``add_s3_arguments`` plus the credentials in the environment."""
    return S3Settings.from_env(*s3_flags(args))

"""s3:// bundles on AWS S3 or any S3-compatible endpoint, through botocore.

``s3://BUCKET/KEY.tar.gz`` is one archive; any other key is a prefix, and every object under
``KEY/`` is a file of a folder bundle (at its path relative to the prefix). Requests are
signed with SigV4 when credentials are given, else sent unsigned (a public bucket).

Credentials come from the environment only (the variables in
``modeldeploy.server.contract.sources``, which the pod spec fills from a Secret), and nothing
else: no credential chain, so no metadata service, no shared files, nothing outside what the
ModelDeployment names. No message, ``repr`` or log line carries them.

botocore does the signing, S3's error codes and path-style or virtual-hosted addressing;
its own retries are off so that the one bounded ``Retry`` of ``modeldeploy fetch`` applies
(5xx, throttling, connection and read errors are retried; 403 and 404 are not).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from modeldeploy.server.contract import sources as c
from modeldeploy.server.sources.base import FetchError, Retry, Retryable, is_tar

CHUNK = 1 << 20
MAX_OBJECTS = 1000  # files in one folder bundle
THROTTLING = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "TooManyRequests"}


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


def add_s3_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """The S3 flags every command that reads or writes S3 takes (``modeldeploy fetch``, the
    server's labelled-data store, the trainer and the gate): the same names everywhere, so
    the operator builds them one way. Credentials are never flags (environment only)."""
    s3 = parser.add_argument_group(title)
    s3.add_argument(
        c.FLAG_S3_ENDPOINT,
        dest="s3_endpoint",
        default="",
        metavar="URL",
        help="an S3-compatible server, http(s)://HOST[:PORT] (default: AWS)",
    )
    s3.add_argument(
        c.FLAG_S3_REGION,
        dest="s3_region",
        default="",
        metavar="REGION",
        help=f"the region requests are signed for (default {c.DEFAULT_S3_REGION})",
    )
    s3.add_argument(
        c.FLAG_S3_PATH_STYLE,
        dest="s3_path_style",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="path-style (ENDPOINT/BUCKET/KEY) or virtual-hosted (BUCKET.ENDPOINT/KEY) "
        "addressing (default: path-style with --s3-endpoint, virtual-hosted on AWS)",
    )


def settings_from_args(args: argparse.Namespace) -> S3Settings:
    """The flags of ``add_s3_arguments`` plus the credentials in the environment."""
    return S3Settings.from_env(args.s3_endpoint, args.s3_region, args.s3_path_style)


def _client(settings: S3Settings, timeout: float) -> Any:
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
        retries={"total_max_attempts": 1},  # the caller's Retry is the only retry
        connect_timeout=timeout,
        read_timeout=timeout,
        user_agent_extra="modeldeploy-fetch",
    )
    return session.create_client(
        "s3",
        endpoint_url=settings.endpoint or None,
        aws_access_key_id=creds.access_key_id if creds else None,
        aws_secret_access_key=creds.secret_access_key if creds else None,
        aws_session_token=(creds.session_token or None) if creds else None,
        config=config,
    )


class S3Source:
    def __init__(self, uri: str, settings: S3Settings) -> None:
        try:
            self.bucket, self.key = c.split_s3_uri(uri)
        except ValueError as exc:
            raise FetchError(str(exc)) from None
        self.uri = uri
        self.settings = settings

    def __repr__(self) -> str:
        return f"S3Source({self.uri!r}, {self.settings!r})"

    def stage(self, work: Path, retry: Retry) -> Path:
        client = _client(self.settings, retry.timeout)
        if is_tar(self.key):
            archive = work / "bundle.tar.gz"
            self._get(client, self.key, archive, retry)
            return archive
        prefix = self.key.rstrip("/") + "/"
        folder = work / "objects"
        folder.mkdir()
        for key in self._list(client, prefix, retry):
            target = folder / self._relative(key, prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._get(client, key, target, retry)
        return folder

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _call(self, key: str, operation: Callable[[], Any]) -> Any:
        """``operation()`` with botocore's errors as ``Retryable`` or ``FetchError``."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            FlexibleChecksumError,
            HTTPClientError,
            IncompleteReadError,
        )

        try:
            return operation()
        except ClientError as exc:
            raise self._client_error(exc, key) from None
        except (ConnectionError, HTTPClientError, IncompleteReadError) as exc:
            raise Retryable(str(exc)) from None
        except FlexibleChecksumError as exc:  # corrupted on the way: fetch it again
            raise Retryable(str(exc)) from None
        except BotoCoreError as exc:
            raise FetchError(f"{self._where(key)}: {exc}") from None

    def _client_error(self, exc: Any, key: str) -> Exception:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = str(error.get("Message", ""))
        detail = f"HTTP {status} {code}".rstrip() + (f": {message}" if message else "")
        where = self._where(key)
        if status >= 500 or status == 429 or code in THROTTLING:
            return Retryable(detail)
        if status == 403:
            signed = "signed" if self.settings.credentials else "unsigned (no credentials)"
            return FetchError(
                f"{where}: access denied to bucket {self.bucket!r}, key {key!r} ({detail}); "
                f"the request was {signed}: check the credentials Secret "
                f"({c.SECRET_ACCESS_KEY_ID}, {c.SECRET_SECRET_ACCESS_KEY}) and the bucket's policy"
            )
        if status == 404:
            what = f"bucket {self.bucket!r}" if code == "NoSuchBucket" else f"key {key!r}"
            return FetchError(f"{where}: no such {what} in bucket {self.bucket!r} ({detail})")
        return FetchError(f"{where}: {detail}")

    def _get(self, client: Any, key: str, target: Path, retry: Retry) -> None:
        def once() -> None:
            def download() -> None:
                body = client.get_object(Bucket=self.bucket, Key=key)["Body"]
                try:
                    with open(target, "wb") as out:
                        for chunk in body.iter_chunks(CHUNK):
                            out.write(chunk)
                finally:
                    body.close()

            self._call(key, download)

        retry.run(self._where(key), once)

    def _list(self, client: Any, prefix: str, retry: Retry) -> list[str]:
        keys: list[str] = []
        token = ""
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
            if token:
                args["ContinuationToken"] = token

            def page(args: dict[str, Any] = args) -> Any:
                return self._call(prefix, lambda: client.list_objects_v2(**args))

            answer = retry.run(self._where(prefix), page)
            keys += [o["Key"] for o in answer.get("Contents", []) if not o["Key"].endswith("/")]
            if len(keys) > MAX_OBJECTS:
                raise FetchError(f"{self._where(prefix)}: more than {MAX_OBJECTS} objects")
            token = answer.get("NextContinuationToken", "") if answer.get("IsTruncated") else ""
            if not token:
                break
        if not keys:
            raise FetchError(
                f"{self._where(prefix)}: no objects under prefix {prefix!r} in bucket "
                f"{self.bucket!r} (an archive's key must end in .tar.gz)"
            )
        return keys

    def _relative(self, key: str, prefix: str) -> PurePosixPath:
        """The object's path in the bundle; keys that would leave it are refused."""
        rel = key[len(prefix) :]
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise FetchError(f"{self._where(key)}: refusing key {key!r} (path outside the bundle)")
        return PurePosixPath(*parts)

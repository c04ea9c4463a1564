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

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from modeldeploy.server.contract import sources as c
from modeldeploy.server.sources.base import FetchError, Retry, Retryable, is_tar
from modeldeploy.server.sources.s3client import Credentials as Credentials
from modeldeploy.server.sources.s3client import S3Settings as S3Settings
from modeldeploy.server.sources.s3client import add_s3_arguments as add_s3_arguments
from modeldeploy.server.sources.s3client import error_detail, make_client
from modeldeploy.server.sources.s3client import settings_from_args as settings_from_args

CHUNK = 1 << 20
MAX_OBJECTS = 1000  # files in one folder bundle
THROTTLING = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "TooManyRequests"}


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
        client = make_client(self.settings, retry.timeout, "modeldeploy-fetch")
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
        status, code, detail = error_detail(exc)
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

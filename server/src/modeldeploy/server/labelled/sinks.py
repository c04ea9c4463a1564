"""Where the labelled-data store's files live: a folder (a volume) or an S3 prefix.

Both sinks speak in keys relative to the location (``MODEL/DATE/NAME.parquet``) and raise
``LabelledDataError`` for anything that fails, with a message naming the location and the
key, never a credential or a row. A folder sink writes each file beside its final name and
renames it into place, so a reader never sees half a file; an S3 object appears whole anyway.
S3 goes through the client ``modeldeploy fetch`` uses (``sources.s3client``): the same
settings, flags and environment-only credentials, one attempt per call (the writer retries at
its next rotation, the reader fails with a clear message).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Protocol

from modeldeploy.server.contract import sources as cs
from modeldeploy.server.sources.base import FetchError
from modeldeploy.server.sources.s3client import S3Settings, error_detail, make_client

TIMEOUT_SECONDS = 10.0  # per S3 call: a dead endpoint costs a rotation this much at most
_DELETE_BATCH = 1000  # S3's DeleteObjects limit


class LabelledDataError(Exception):
    """The store's location cannot be reached, read or written (the message says where).
    ``cause`` is the same without the file's name: what the writer's log compares, so a
    failure is logged once however many files it hits."""

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause or message


class Sink(Protocol):
    """One location of the store."""

    where: str

    def check(self) -> None:
        """Raise ``LabelledDataError`` unless the location exists and answers."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def keys(self, prefix: str) -> list[str]:
        """Every file key under ``prefix`` (a folder path ending in ``/``, or "")."""
        ...

    def folders(self, prefix: str) -> list[str]:
        """The names of the folders right under ``prefix``."""
        ...

    def delete(self, keys: list[str]) -> None: ...


class FolderSink:
    """Files on a volume under ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def check(self) -> None:
        if not self.root.is_dir():
            raise LabelledDataError(f"{self.where}: no such folder")

    def put(self, key: str, data: bytes) -> None:
        target = self.root / key
        scratch = target.with_name(f".{target.name}.partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch.write_bytes(data)
            os.replace(scratch, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                scratch.unlink(missing_ok=True)
            raise LabelledDataError(
                f"{self.where}: cannot write {key}: {exc.strerror}",
                f"{self.where}: cannot write: {exc.strerror}",
            ) from None

    def get(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except OSError as exc:
            raise LabelledDataError(f"{self.where}: cannot read {key}: {exc.strerror}") from None

    def keys(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        try:
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in folder.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            )
        except OSError as exc:
            raise LabelledDataError(f"{self.where}: cannot list {prefix}: {exc.strerror}") from None

    def folders(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        try:
            return sorted(p.name for p in folder.iterdir() if p.is_dir())
        except OSError as exc:
            raise LabelledDataError(f"{self.where}: cannot list {prefix}: {exc.strerror}") from None

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self.root / key
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise LabelledDataError(
                    f"{self.where}: cannot delete {key}: {exc.strerror}",
                    f"{self.where}: cannot delete: {exc.strerror}",
                ) from None
            with contextlib.suppress(OSError):  # a day's last file: its folder goes too
                path.parent.rmdir()


class S3Sink:
    """Objects under ``s3://BUCKET/PREFIX/``."""

    def __init__(self, bucket: str, prefix: str, settings: S3Settings) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.settings = settings
        self.where = f"s3://{bucket}/{self.prefix}"
        self._client: Any = None

    def __repr__(self) -> str:
        return f"S3Sink({self.where!r}, {self.settings!r})"

    def _call(self, what: str, operation: str, **args: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self._client is None:
                self._client = make_client(self.settings, TIMEOUT_SECONDS, "modeldeploy-labelled")
            return getattr(self._client, operation)(Bucket=self.bucket, **args)
        except ClientError as exc:
            status, code, detail = error_detail(exc)
            if code == "NoSuchBucket" or (operation == "head_bucket" and status == 404):
                detail = f"no such bucket {self.bucket!r} ({detail})"
            elif status == 403:
                signed = "signed" if self.settings.credentials else "unsigned (no credentials)"
                detail = f"access denied ({detail}); the request was {signed}"
            raise LabelledDataError(
                f"{self.where}: {what}: {detail}", f"{self.where}: {operation}: {detail}"
            ) from None
        except BotoCoreError as exc:
            raise LabelledDataError(
                f"{self.where}: {what}: {exc}", f"{self.where}: {operation}: {exc}"
            ) from None

    def check(self) -> None:
        self._call("cannot reach the bucket", "head_bucket")

    def put(self, key: str, data: bytes) -> None:
        self._call(f"cannot write {key}", "put_object", Key=self.prefix + key, Body=data)

    def get(self, key: str) -> bytes:
        answer = self._call(f"cannot read {key}", "get_object", Key=self.prefix + key)
        body = answer["Body"]
        try:
            return bytes(body.read())
        except Exception as exc:  # a cut connection while reading the body
            raise LabelledDataError(f"{self.where}: cannot read {key}: {exc}") from None
        finally:
            body.close()

    def _pages(self, prefix: str, **args: Any) -> list[dict[str, Any]]:
        pages, token = [], ""
        while True:
            more = {"ContinuationToken": token} if token else {}
            page = self._call(
                f"cannot list {prefix}",
                "list_objects_v2",
                Prefix=self.prefix + prefix,
                **args,
                **more,
            )
            pages.append(page)
            token = page.get("NextContinuationToken", "") if page.get("IsTruncated") else ""
            if not token:
                return pages

    def keys(self, prefix: str) -> list[str]:
        start = len(self.prefix)
        return sorted(
            o["Key"][start:]
            for page in self._pages(prefix)
            for o in page.get("Contents", [])
            if not o["Key"].endswith("/")
        )

    def folders(self, prefix: str) -> list[str]:
        start = len(self.prefix + prefix)
        return sorted(
            p["Prefix"][start:].rstrip("/")
            for page in self._pages(prefix, Delimiter="/")
            for p in page.get("CommonPrefixes", [])
        )

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            objects = [{"Key": self.prefix + k} for k in keys[i : i + _DELETE_BATCH]]
            answer = self._call(
                f"cannot delete {len(objects)} files",
                "delete_objects",
                Delete={"Objects": objects, "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise LabelledDataError(
                    f"{self.where}: cannot delete {first.get('Key', '')}: {first.get('Code', '')}"
                )


def open_sink(location: str, s3: S3Settings | None = None) -> Sink:
    """The sink of ``location``: ``s3://BUCKET[/PREFIX]`` or a folder (``file://`` or a path).
    No I/O: a wrong location string is refused here, an unreachable one on first use."""
    if location.startswith(cs.S3_SCHEME):
        bucket, _, prefix = location[len(cs.S3_SCHEME) :].partition("/")
        try:
            cs.check_bucket(bucket)
        except ValueError as exc:
            raise LabelledDataError(f"{location}: {exc}") from None
        if any(part in (".", "..") for part in prefix.split("/")):
            raise LabelledDataError(f"{location}: the prefix may not hold '.' or '..' segments")
        return S3Sink(bucket, prefix, s3 or S3Settings())
    if s3 is not None and s3.configured:
        raise LabelledDataError(f"{location}: S3 settings were given for a location not s3://")
    if "://" in location and not location.startswith("file://"):
        raise LabelledDataError(f"{location}: use s3://BUCKET/PREFIX or a folder")
    path = location.removeprefix("file://")
    if not path:
        raise LabelledDataError("the labelled-data location is empty")
    return FolderSink(Path(path))


def s3_settings(endpoint: str, region: str, path_style: bool | None) -> S3Settings:
    """S3 settings from flags plus the credentials in the environment (``LabelledDataError``
    for a wrong value, never naming a secret)."""
    try:
        return S3Settings.from_env(endpoint, region, path_style)
    except FetchError as exc:
        raise LabelledDataError(str(exc)) from None

"""Where the example trainer writes a new bundle when there is no registry
(``MODELDEPLOY_RETRAIN_OUTPUT``, which the operator chose under ``spec.retrain.output``): one
``s3://BUCKET/KEY.tar.gz`` object, with the labelled-data store's S3 settings and
credentials, or an HTTP PUT of the archive to an ``http(s)://.../KEY.tar.gz`` URL, with
``Authorization: Bearer TOKEN`` when ``MODELDEPLOY_RETRAIN_OUTPUT_TOKEN`` is set.

The archive holds the bundle's two files at its root; its digest is the bundle's (the
manifest of the two), so the sha256 the trainer answers pins exactly what it wrote. Neither
the token nor the S3 credentials appear in a message.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from modeldeploy.server.bundlefiles import pack_bundle
from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.contract import sources as c
from modeldeploy.server.labelled.sinks import LabelledDataError, S3Sink

TIMEOUT_SECONDS = 60.0


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check(uri: str) -> None:
    """``ValueError`` saying what an output URI must be."""
    if not _is_http(uri):
        c.split_s3_uri(uri)
    if not uri.endswith(".tar.gz") or "?" in uri or "#" in uri:
        raise ValueError(
            f"{uri}: the output must be one s3://BUCKET/KEY.tar.gz object or one "
            "http(s)://HOST/PATH.tar.gz URL"
        )


def write(folder: Path, uri: str, settings: Any) -> int:
    """Write the bundle ``folder`` as the archive ``uri``; its size in bytes.
    ``LabelledDataError`` when the destination refuses it (the message names no secret)."""
    check(uri)
    with tempfile.TemporaryDirectory() as tmp:
        data = pack_bundle(folder, Path(tmp) / "bundle.tar.gz").read_bytes()
    if _is_http(uri):
        _put(uri, data, os.environ.get(rc.ENV_OUTPUT_TOKEN, ""))
    else:
        bucket, key = c.split_s3_uri(uri)
        S3Sink(bucket, "", settings).put(key, data)
    return len(data)


def _put(url: str, data: bytes, token: str) -> None:
    headers = {"Content-Type": "application/gzip", "User-Agent": "modeldeploy-retrain"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        signed = "with" if token else "without"
        raise LabelledDataError(
            f"{url}: PUT answered HTTP {exc.code} {exc.reason} (sent {signed} a bearer token)"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise LabelledDataError(f"{url}: PUT failed: {getattr(exc, 'reason', exc)}") from None

"""Where the example trainer writes a new bundle when there is no registry: one
``s3://BUCKET/KEY.tar.gz`` object (``MODELDEPLOY_RETRAIN_OUTPUT``, which the operator chose
under ``spec.retrain.output``), with the labelled-data store's S3 settings and credentials.

The archive holds the bundle's two files at its root; its digest is the bundle's (the
manifest of the two), so the sha256 the trainer answers pins exactly the object it wrote.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from modeldeploy.server.bundlefiles import pack_bundle
from modeldeploy.server.contract import sources as c
from modeldeploy.server.labelled.sinks import S3Sink


def check(uri: str) -> tuple[str, str]:
    """(bucket, key) of an output URI, or ``ValueError`` saying what it must be."""
    bucket, key = c.split_s3_uri(uri)
    if not key.endswith(".tar.gz"):
        raise ValueError(f"{uri}: the output must be one s3://BUCKET/KEY.tar.gz object")
    return bucket, key


def write(folder: Path, uri: str, settings: Any) -> int:
    """Upload the bundle ``folder`` as the archive ``uri``; its size in bytes.
    ``LabelledDataError`` when the store refuses it (the message names no secret)."""
    bucket, key = check(uri)
    with tempfile.TemporaryDirectory() as tmp:
        data = pack_bundle(folder, Path(tmp) / "bundle.tar.gz").read_bytes()
    S3Sink(bucket, "", settings).put(key, data)
    return len(data)

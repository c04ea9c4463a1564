"""Bundle sources of ``modeldeploy fetch``, one module per kind of URI.

A source only gets the bundle's bytes into a scratch folder (``Source.stage``); what follows
is the same for all of them and lives in ``modeldeploy.server.fetch``: unpacking, the digest
check and the all-or-nothing placement. ``base.Retry`` is the one bounded retry they share.

- ``http``: http(s)://.../bundle.tar.gz (standard library);
- ``local``: file:///path or /path, a folder or a .tar.gz;
- ``s3``: s3://bucket/key.tar.gz or s3://bucket/prefix/ (a folder bundle), any S3-compatible
  endpoint, credentials from the environment only;
- ``mlflow``: models:/NAME/VERSION or models:/NAME@ALIAS, a version in an MLflow Model
  Registry, through the tracking server's REST API (standard library); it is also pinned by
  the version's digest tag (``MLflowSource.pin``); ``mlflow_api`` is its REST client.

A new kind of source is a module with a class that has ``uri`` and ``stage`` and one more
branch in ``source_for``.
"""

from __future__ import annotations

import urllib.parse

from modeldeploy.server.sources.base import (
    ATTEMPTS as ATTEMPTS,
)
from modeldeploy.server.sources.base import (
    BACKOFF_SECONDS as BACKOFF_SECONDS,
)
from modeldeploy.server.sources.base import (
    TIMEOUT_SECONDS as TIMEOUT_SECONDS,
)
from modeldeploy.server.sources.base import FetchError as FetchError
from modeldeploy.server.sources.base import Retry as Retry
from modeldeploy.server.sources.base import Source as Source
from modeldeploy.server.sources.base import is_tar as is_tar
from modeldeploy.server.sources.mlflow_api import MLflowSettings
from modeldeploy.server.sources.s3 import S3Settings


def source_for(
    uri: str, s3: S3Settings | None = None, mlflow: MLflowSettings | None = None
) -> Source:
    """The source for ``uri``; ``s3`` (endpoint, region, addressing, credentials) applies to
    s3:// URIs only, ``mlflow`` (the tracking server) to models:/ URIs only."""
    scheme = urllib.parse.urlparse(uri).scheme
    if s3 is not None and s3.configured and scheme != "s3":
        raise FetchError(f"{uri}: S3 settings were given for a URI that is not s3://")
    if mlflow is not None and mlflow.configured and scheme != "models":
        raise FetchError(f"{uri}: a tracking server was given for a URI that is not models:/")
    if scheme in ("http", "https"):
        from modeldeploy.server.sources.http import HttpSource

        return HttpSource(uri)
    if scheme in ("", "file"):
        from modeldeploy.server.sources.local import LocalSource

        return LocalSource(uri)
    if scheme == "s3":
        from modeldeploy.server.sources.s3 import S3Source

        return S3Source(uri, s3 or S3Settings())
    if scheme == "models":
        from modeldeploy.server.sources.mlflow import MLflowSource

        return MLflowSource(uri, mlflow or MLflowSettings())
    raise FetchError(
        f"{uri}: unsupported scheme {scheme!r} (use http(s)://, s3://, models:/, file:// or a path)"
    )

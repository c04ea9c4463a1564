"""Where a model's bundle comes from, beyond its URI: ``spec.model.s3`` and
``spec.model.mlflow``, and the checks the parser applies to a bundle URI (the same rules as
the CRD's CEL, from the server's contract).

Raises ``ValueError`` with the field's path; ``model.ModelRef`` turns it into a ``SpecError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modeldeploy.server.contract import sources

Json = dict[str, Any]
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


@dataclass(frozen=True)
class S3Source:
    """``spec.model.s3``: how to reach an s3:// bundle. The credentials Secret is only named:
    the pod reads it (``secretKeyRef``), the operator never does."""

    endpoint: str = ""
    region: str = ""
    path_style: bool | None = None
    credentials_secret: str = ""

    def to_json(self) -> Json:
        out: Json = {}
        if self.endpoint:
            out["endpoint"] = self.endpoint
        if self.region:
            out["region"] = self.region
        if self.path_style is not None:
            out["pathStyle"] = self.path_style
        if self.credentials_secret:
            out["credentialsSecret"] = self.credentials_secret
        return out

    @classmethod
    def from_json(cls, raw: Json) -> S3Source:
        path_style = raw.get("pathStyle")
        out = cls(
            endpoint=str(raw.get("endpoint", "")),
            region=str(raw.get("region", "")),
            path_style=None if path_style is None else bool(path_style),
            credentials_secret=str(raw.get("credentialsSecret", "")),
        )
        try:
            if out.endpoint:
                sources.check_endpoint(out.endpoint)
            if out.region:
                sources.check_region(out.region)
        except ValueError as exc:
            raise ValueError(f"spec.model.s3: {exc}") from None
        if out.credentials_secret and not re.match(DNS_SUBDOMAIN, out.credentials_secret):
            raise ValueError(
                f"spec.model.s3.credentialsSecret {out.credentials_secret!r} is not a Secret name"
            )
        return out


@dataclass(frozen=True)
class MLflowSource:
    """``spec.model.mlflow``: the tracking server of a models:/ bundle. The credentials
    Secret is only named: the pod reads it (``secretKeyRef``), the operator never does."""

    tracking_uri: str
    credentials_secret: str = ""

    def to_json(self) -> Json:
        out: Json = {"trackingURI": self.tracking_uri}
        if self.credentials_secret:
            out["credentialsSecret"] = self.credentials_secret
        return out

    @classmethod
    def from_json(cls, raw: Json) -> MLflowSource:
        out = cls(str(raw.get("trackingURI", "")), str(raw.get("credentialsSecret", "")))
        if not re.match(sources.TRACKING_URI_PATTERN, out.tracking_uri):
            raise ValueError(
                "spec.model.mlflow.trackingURI must be http(s)://HOST[:PORT][/PATH] (no user "
                "info: credentials come from spec.model.mlflow.credentialsSecret)"
            )
        if out.credentials_secret and not re.match(DNS_SUBDOMAIN, out.credentials_secret):
            raise ValueError(
                f"spec.model.mlflow.credentialsSecret {out.credentials_secret!r} is not a "
                "Secret name"
            )
        return out


def sources_from_json(raw: Json) -> tuple[S3Source | None, MLflowSource | None]:
    """The ``s3`` and ``mlflow`` blocks of ``spec.model``, when present."""
    s3, mlflow = raw.get("s3"), raw.get("mlflow")
    return (
        None if s3 is None else S3Source.from_json(s3),
        None if mlflow is None else MLflowSource.from_json(mlflow),
    )


def check_bundle_uri(
    uri: str, s3: S3Source | None, mlflow: MLflowSource | None = None, sha256: str = "x"
) -> None:
    """An s3:// URI must name a valid bucket and a key; an ``s3`` block needs an s3:// URI.
    A models:/ URI needs the ``mlflow`` block (and only it may have one) and is the only
    kind whose ``sha256`` may be left out (the version's digest tag is its pin)."""
    is_models = uri.startswith(sources.MODELS_SCHEME)
    if is_models:
        try:
            sources.split_models_uri(uri)
        except ValueError as exc:
            raise ValueError(f"spec.model.bundleURI: {exc}") from None
        if mlflow is None:
            raise ValueError("spec.model.mlflow (trackingURI) is required with a models:/ URI")
    elif mlflow is not None:
        raise ValueError("spec.model.mlflow applies only to a models:/ bundleURI")
    elif not sha256:
        raise ValueError("spec.model.sha256 is required (only a models:/ URI may omit it)")
    if uri.startswith(sources.S3_SCHEME):
        try:
            sources.split_s3_uri(uri)
        except ValueError as exc:
            raise ValueError(f"spec.model.bundleURI: {exc}") from None
    elif s3 is not None:
        raise ValueError("spec.model.s3 applies only to an s3:// bundleURI")

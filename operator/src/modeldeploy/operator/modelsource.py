"""Where a model's bundle comes from, beyond its URI: ``spec.model.s3``, and the checks the
parser applies to a bundle URI (the same rules as the CRD's CEL, from the server's contract).

Raises ``ValueError`` with the field's path; ``model.ModelRef`` turns it into a ``SpecError``.
A new kind of source (MLflow's ``models:/``) adds its block and its branch here.
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


def check_bundle_uri(uri: str, s3: S3Source | None) -> None:
    """An s3:// URI must name a valid bucket and a key; an ``s3`` block needs an s3:// URI."""
    if uri.startswith(sources.S3_SCHEME):
        try:
            sources.split_s3_uri(uri)
        except ValueError as exc:
            raise ValueError(f"spec.model.bundleURI: {exc}") from None
    elif s3 is not None:
        raise ValueError("spec.model.s3 applies only to an s3:// bundleURI")

"""The schema of a bundle's sources: ``spec.model.s3``, ``spec.model.mlflow`` and the CEL
rules tying them to the bundle URI (the operator's parser checks the same, in
``modelsource``)."""

from __future__ import annotations

from modeldeploy.operator.modelsource import DNS_SUBDOMAIN
from modeldeploy.operator.schema.openapi import Schema, _bool, _obj, _str
from modeldeploy.server.contract import sources

# (rule, message) on spec.model.
SOURCE_RULES = [
    (
        "has(self.mlflow) == self.bundleURI.startsWith('models:/')",
        "mlflow (trackingURI) is required with a models:/ bundleURI, and applies only to one",
    ),
    (
        "has(self.sha256) || self.bundleURI.startsWith('models:/')",
        "sha256 is required (only a models:/ bundleURI may omit it: the version's "
        "modeldeploy.sha256 tag pins it)",
    ),
    (
        "!self.bundleURI.startsWith('models:/') || "
        f"(self.bundleURI.matches('{sources.MODELS_URI_PATTERN}') && "
        "!self.bundleURI.matches('@[vV][0-9]+$'))",
        "a models:/ bundleURI is models:/NAME/VERSION (a version number from 1) or "
        "models:/NAME@ALIAS: a name of letters, digits, '_', '.' and '-', an alias of letters, "
        "digits, '_' and '-' starting with a letter or '_' (not like a version, v1)",
    ),
]


def mlflow_schema() -> Schema:
    return _obj(
        {
            "trackingURI": _str(
                "The MLflow tracking server, http(s)://HOST[:PORT][/PATH] (no user info); "
                "both the operator (to resolve the URI) and the init container (to fetch the "
                "files through its artifacts proxy) call it.",
                pattern=sources.TRACKING_URI_PATTERN,
                maxLength=512,
            ),
            "credentialsSecret": _str(
                "A Secret in this namespace with any of the keys "
                f"{', '.join(sources.MLFLOW_CREDENTIAL_ENV)} (basic auth or a token). Only "
                "the init container gets them, as environment variables; the operator never "
                "reads the Secret (it resolves with its own credentials).",
                pattern=DNS_SUBDOMAIN,
                maxLength=253,
            ),
            "writeBack": _obj(
                {
                    "enabled": _bool(
                        "Write rollout outcomes back to the registry with the operator's "
                        "credentials (they need write access).",
                        default=False,
                    ),
                    "alias": _str(
                        "The alias moved to each promoted version.",
                        default="production",
                        pattern=sources.ALIAS_PATTERN,
                        maxLength=255,
                    ),
                },
                description="After a promotion, move the alias to the promoted version and "
                "tag it (modeldeploy.rollout.outcome, time, modeldeployment); after a "
                "rollback, tag the candidate version with the outcome and the rule that "
                "fired (modeldeploy.rollout.rule, value). Off unless enabled.",
                rules=[
                    (
                        "!has(self.alias) || !self.alias.matches('^[vV][0-9]+$')",
                        "writeBack.alias must not look like a version (v1)",
                    )
                ],
            ),
        },
        required=["trackingURI"],
        description="How to reach the MLflow Model Registry of a models:/ bundle.",
    )


def s3_schema() -> Schema:
    return _obj(
        {
            "endpoint": _str(
                "An S3-compatible server, http(s)://HOST[:PORT]; default AWS S3.",
                pattern=sources.ENDPOINT_PATTERN,
                maxLength=512,
            ),
            "region": _str(
                f"The region requests are signed for (default {sources.DEFAULT_S3_REGION}).",
                pattern=sources.REGION_PATTERN,
                maxLength=32,
            ),
            "pathStyle": _bool(
                "Path-style addressing (ENDPOINT/BUCKET/KEY) instead of virtual-hosted "
                "(BUCKET.ENDPOINT/KEY); default: path-style with an endpoint, virtual-hosted "
                "on AWS."
            ),
            "credentialsSecret": _str(
                "A Secret in this namespace with the keys "
                f"{sources.SECRET_ACCESS_KEY_ID} and {sources.SECRET_SECRET_ACCESS_KEY} "
                f"(and, optionally, {sources.SECRET_SESSION_TOKEN}). Only the init container "
                "gets them, as environment variables; the operator never reads the Secret. "
                "Without it, requests are unsigned (a public bucket).",
                pattern=DNS_SUBDOMAIN,
                maxLength=253,
            ),
        },
        description="How to reach an s3:// bundle: the endpoint, region, addressing and "
        "credentials.",
    )

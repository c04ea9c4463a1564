"""Where bundles come from: the ``modeldeploy fetch`` command line and the rules both halves
check a bundle URI by (the CRD's admission, the operator's parser and the init container).

Standard library only, like the rest of the contract.
"""

from __future__ import annotations

import re
from typing import Final

FETCH_COMMAND: Final = ("modeldeploy", "fetch")
# Checked by the init container before the bundle is put in place (the server checks again).
FLAG_FETCH_SHA256: Final = "--sha256"
FLAG_S3_ENDPOINT: Final = "--s3-endpoint"
FLAG_S3_REGION: Final = "--s3-region"
FLAG_S3_PATH_STYLE: Final = "--s3-path-style"
FLAG_NO_S3_PATH_STYLE: Final = "--no-s3-path-style"
DEFAULT_S3_REGION: Final = "us-east-1"

# S3 credentials reach the init container only as environment variables that the pod spec
# fills from a Secret (valueFrom.secretKeyRef): never a flag, never a literal in the spec.
ENV_S3_ACCESS_KEY_ID: Final = "MODELDEPLOY_S3_ACCESS_KEY_ID"
ENV_S3_SECRET_ACCESS_KEY: Final = "MODELDEPLOY_S3_SECRET_ACCESS_KEY"
ENV_S3_SESSION_TOKEN: Final = "MODELDEPLOY_S3_SESSION_TOKEN"
# The keys of the user's credentials Secret (the names most S3 tooling already uses).
SECRET_ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
SECRET_SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"
SECRET_SESSION_TOKEN: Final = "AWS_SESSION_TOKEN"  # optional
# (environment variable, Secret key, required) for the pod spec.
S3_CREDENTIAL_ENV: Final = (
    (ENV_S3_ACCESS_KEY_ID, SECRET_ACCESS_KEY_ID, True),
    (ENV_S3_SECRET_ACCESS_KEY, SECRET_SECRET_ACCESS_KEY, True),
    (ENV_S3_SESSION_TOKEN, SECRET_SESSION_TOKEN, False),
)

S3_SCHEME: Final = "s3://"
# S3's bucket naming rules (general purpose buckets), as one expression for the CRD's CEL rule.
BUCKET_PATTERN: Final = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
S3_URI_PATTERN: Final = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"
ENDPOINT_PATTERN: Final = r"^https?://[^/?#@\s]+/?$"
REGION_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$"
_IP = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")


def check_bucket(bucket: str) -> None:
    """Raise ``ValueError`` with the rule a bucket name breaks."""
    if not 3 <= len(bucket) <= 63:
        raise ValueError(f"bucket name {bucket!r} must be 3 to 63 characters long")
    if not re.match(BUCKET_PATTERN, bucket):
        raise ValueError(
            f"bucket name {bucket!r} may hold only lowercase letters, digits, dots and hyphens, "
            "and must begin and end with a letter or digit"
        )
    if ".." in bucket or _IP.match(bucket):
        raise ValueError(f"bucket name {bucket!r} may not hold '..' or look like an IP address")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://BUCKET/KEY`` -> (bucket, key); ``ValueError`` saying what is wrong.

    KEY names one object (a ``.tar.gz`` bundle) or, otherwise, a prefix under which every
    object is a file of a folder bundle.
    """
    if not uri.startswith(S3_SCHEME):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    check_bucket(bucket)
    if not key.strip("/"):
        raise ValueError(
            f"{uri!r} names no object: use s3://{bucket}/KEY.tar.gz or s3://{bucket}/PREFIX/"
        )
    if any(part in ("..", ".") for part in key.split("/")):
        raise ValueError(f"{uri!r}: the key may not hold '.' or '..' segments")
    return bucket, key


def check_endpoint(endpoint: str) -> None:
    """An S3 endpoint is ``http(s)://HOST[:PORT]``: no path, query or user info."""
    if not re.match(ENDPOINT_PATTERN, endpoint):
        raise ValueError(
            f"S3 endpoint {endpoint!r} must be http(s)://HOST[:PORT] (no path, query or user)"
        )


def check_region(region: str) -> None:
    if not re.match(REGION_PATTERN, region):
        raise ValueError(f"S3 region {region!r} must be lowercase letters, digits and hyphens")


# --- The MLflow Model Registry: models:/NAME/VERSION and models:/NAME@ALIAS ---------------

MODELS_SCHEME: Final = "models:/"
FLAG_MLFLOW_TRACKING_URI: Final = "--tracking-uri"
# Credentials of the tracking server, under the names MLflow's own client reads them by:
# basic auth (username and password) or a bearer token. Environment only, never a flag.
ENV_MLFLOW_USERNAME: Final = "MLFLOW_TRACKING_USERNAME"
ENV_MLFLOW_PASSWORD: Final = "MLFLOW_TRACKING_PASSWORD"
ENV_MLFLOW_TOKEN: Final = "MLFLOW_TRACKING_TOKEN"
# The keys of the user's credentials Secret are the same names; each one is optional (basic
# auth, a token, or nothing for a tracking server without authentication).
MLFLOW_CREDENTIAL_ENV: Final = (ENV_MLFLOW_USERNAME, ENV_MLFLOW_PASSWORD, ENV_MLFLOW_TOKEN)
# http(s)://HOST[:PORT][/PATH], no user info (credentials come from the environment only).
TRACKING_URI_PATTERN: Final = r"^https?://[^/?#@\s]+(/[^?#@\s]*)?$"
# Tags `modeldeploy register` sets on a model version. The digest tag is the pin of every
# fetch of that version without --sha256 (a version without it is never fetched unpinned).
TAG_SHA256: Final = "modeldeploy.sha256"
TAG_DATA_FINGERPRINT: Final = "modeldeploy.data_fingerprint"
TAG_METRIC_PREFIX: Final = "modeldeploy.metric."  # + the card's metric name
TAG_MODEL_VERSION: Final = "modeldeploy.card_version"  # the card's own version string
# What the operator writes back after a rollout (spec.model.mlflow.writeBack): + outcome,
# time, modeldeployment (NAMESPACE/NAME), and for a rollback rule and value.
TAG_ROLLOUT_PREFIX: Final = "modeldeploy.rollout."
# What the operator writes on a retrained version once its gate decided (spec.retrain): +
# verdict (passed or rejected), summary, checks (the table as JSON), run, time, modeldeployment.
TAG_GATE_PREFIX: Final = "modeldeploy.gate."
# The registry's names: at most 256 characters, no '/' (MLflow's own rule is looser).
MODEL_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$"
ALIAS_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$"
# Both forms in one expression (for the CRD's CEL rule); an alias that looks like a version
# (v1) is refused separately.
MODELS_URI_PATTERN: Final = (
    r"^models:/[A-Za-z0-9][A-Za-z0-9_.-]{0,255}(/0*[1-9][0-9]*|@[A-Za-z_][A-Za-z0-9_-]{0,254})$"
)


def split_models_uri(uri: str) -> tuple[str, str, str]:
    """``models:/NAME/VERSION`` -> (name, version, ""); ``models:/NAME@ALIAS`` ->
    (name, "", alias); ``ValueError`` saying what is wrong."""
    if not uri.startswith(MODELS_SCHEME):
        raise ValueError(f"{uri!r} is not a models:/ URI")
    rest = uri[len(MODELS_SCHEME) :]
    if "@" in rest:
        name, _, alias = rest.partition("@")
        version = ""
        if not re.match(ALIAS_PATTERN, alias) or re.match(r"^[vV][0-9]+$", alias):
            raise ValueError(
                f"{uri!r}: alias {alias!r} must be letters, digits, '_' and '-', start with "
                "a letter or '_', and not look like a version (v1)"
            )
    else:
        name, _, version = rest.partition("/")
        alias = ""
        if not version.isdigit() or int(version) < 1:
            raise ValueError(
                f"{uri!r}: use models:/NAME/VERSION (a version number from 1) or models:/NAME@ALIAS"
            )
        version = str(int(version))
    if not re.match(MODEL_NAME_PATTERN, name):
        raise ValueError(
            f"{uri!r}: model name {name!r} must be letters, digits, '_', '.' and '-' "
            "(at most 256, starting with a letter or digit)"
        )
    return name, version, alias

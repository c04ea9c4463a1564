"""``spec.retrain`` parsed into typed values (the schema is ``schema.retrain``).

Falls back on ``defaults`` for what the apiserver did not default, like ``model.Spec``, so a
spec read from a test or an older object behaves the same. Raises ``ValueError`` naming the
field; the reconcile turns it into an invalid-spec status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from modeldeploy.operator import defaults as d
from modeldeploy.operator.modelsource import DNS_SUBDOMAIN, S3Source
from modeldeploy.server.contract import sources

Json = dict[str, Any]


@dataclass(frozen=True)
class Trainer:
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # (name, value): values only, never a reference
    resources: Json = field(default_factory=dict)
    deadline_seconds: int = d.RETRAIN_DEADLINE_SECONDS


@dataclass(frozen=True)
class LabelledData:
    uri: str
    s3: S3Source = field(default_factory=S3Source)
    window_seconds: int = d.RETRAIN_WINDOW_SECONDS
    collect_seconds: int = d.RETRAIN_COLLECT_SECONDS


@dataclass(frozen=True)
class RetrainSpec:
    trainer: Trainer
    labelled_data: LabelledData
    alerts: tuple[str, ...] = d.RETRAIN_ALERTS
    interval_seconds: int | None = None
    cooldown_seconds: int = d.RETRAIN_COOLDOWN_SECONDS
    max_per_day: int = d.RETRAIN_MAX_PER_DAY
    max_regression: float = d.RETRAIN_MAX_REGRESSION
    approval: Literal["auto", "manual"] = "auto"
    # s3://BUCKET/PREFIX (written with labelled_data.s3) or http(s)://HOST/PATH (PUT, with
    # the bearer token of output_secret) for the new bundles of a ModelDeployment with no
    # registry; "" for a models:/ one, whose new versions are registered.
    output_uri: str = ""
    output_secret: str = ""


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValueError(f"{where} must be a list of strings")
    return tuple(raw)


def _trainer(raw: Json) -> Trainer:
    image = str(raw.get("image") or "")
    if not image:
        raise ValueError("spec.retrain.trainer.image is required")
    env = []
    for item in raw.get("env") or []:
        if not isinstance(item, dict) or "name" not in item or "valueFrom" in item:
            raise ValueError("spec.retrain.trainer.env takes {name, value} only")
        name = str(item["name"])
        if name.startswith("MODELDEPLOY_"):
            raise ValueError(f"spec.retrain.trainer.env {name}: MODELDEPLOY_ names are reserved")
        env.append((name, str(item.get("value", ""))))
    return Trainer(
        image=image,
        command=_strings(raw.get("command"), "spec.retrain.trainer.command"),
        args=_strings(raw.get("args"), "spec.retrain.trainer.args"),
        env=tuple(env),
        resources=dict(raw.get("resources") or {}),
        deadline_seconds=int(raw.get("activeDeadlineSeconds", d.RETRAIN_DEADLINE_SECONDS)),
    )


def _labelled(raw: Any) -> LabelledData:
    if not isinstance(raw, dict) or not raw.get("uri"):
        raise ValueError("spec.retrain.labelledData.uri is required")
    uri = str(raw["uri"])
    if not uri.startswith(sources.S3_SCHEME):
        raise ValueError("spec.retrain.labelledData.uri must be s3://BUCKET/PREFIX")
    bucket = uri[len(sources.S3_SCHEME) :].partition("/")[0]
    try:
        sources.check_bucket(bucket)
        s3 = S3Source.from_json(dict(raw.get("s3") or {}))
    except ValueError as exc:
        raise ValueError(f"spec.retrain.labelledData: {exc}") from None
    return LabelledData(
        uri,
        s3,
        int(raw.get("windowSeconds", d.RETRAIN_WINDOW_SECONDS)),
        int(raw.get("collectSeconds", d.RETRAIN_COLLECT_SECONDS)),
    )


def _output(raw: Any) -> tuple[str, str]:
    """(uri, credentials Secret) of ``spec.retrain.output``; ("", "") without one."""
    if raw is None:
        return "", ""
    raw = raw if isinstance(raw, dict) else {}
    uri, secret = str(raw.get("uri", "")).rstrip("/"), str(raw.get("credentialsSecret", ""))
    if re.match(sources.TRACKING_URI_PATTERN, uri):  # http(s)://HOST[:PORT][/PATH]
        path = uri.partition("://")[2].partition("/")[2]
    elif uri.startswith(sources.S3_SCHEME):
        bucket, _, path = uri.removeprefix(sources.S3_SCHEME).partition("/")
        try:
            sources.check_bucket(bucket)
        except ValueError as exc:
            raise ValueError(f"spec.retrain.output.uri: {exc}") from None
        if secret:
            raise ValueError(
                "spec.retrain.output.credentialsSecret is for an http(s) output (an s3:// one "
                "is written with spec.retrain.labelledData.s3)"
            )
    else:
        raise ValueError(
            "spec.retrain.output.uri must be s3://BUCKET[/PREFIX] or http(s)://HOST[:PORT][/PATH]"
        )
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError("spec.retrain.output.uri: the path may not hold '.' or '..' segments")
    if secret and not re.match(DNS_SUBDOMAIN, secret):
        raise ValueError(f"spec.retrain.output.credentialsSecret {secret!r} is not a Secret name")
    return uri, secret


def parse(spec: Json) -> RetrainSpec | None:
    """``spec.retrain`` of a ModelDeployment's ``spec``, or None when it has none.

    A ``models:/NAME@ALIAS`` bundle's new versions are registered under NAME and become the
    alias's, which the alias resolution then rolls out; any other bundle's are written under
    ``spec.retrain.output`` and adopted in status (``retrainoutput``)."""
    raw = spec.get("retrain")
    if raw is None:
        return None
    uri = str((spec.get("model") or {}).get("bundleURI", ""))
    output, output_secret = _output(raw.get("output"))
    if output and uri.startswith(sources.MODELS_SCHEME):
        raise ValueError(
            "spec.retrain.output applies to an s3:// or http(s):// bundleURI (a models:/ "
            "bundle's new versions are registered under its NAME)"
        )
    try:
        _, _, alias = sources.split_models_uri(uri)
    except ValueError:
        alias = ""
    if not alias and not output:
        raise ValueError(
            "spec.retrain needs spec.model.bundleURI models:/NAME@ALIAS, or spec.retrain.output "
            "for an s3:// or http(s):// bundle"
        )
    trigger = raw.get("trigger") or {}
    interval = trigger.get("intervalSeconds")
    approval = raw.get("approval", "auto")
    if approval not in ("auto", "manual"):
        raise ValueError("spec.retrain.approval must be auto or manual")
    return RetrainSpec(
        trainer=_trainer(raw.get("trainer") or {}),
        labelled_data=_labelled(raw.get("labelledData")),
        alerts=_strings(trigger.get("alerts", list(d.RETRAIN_ALERTS)), "trigger.alerts"),
        interval_seconds=None if interval is None else int(interval),
        cooldown_seconds=int(raw.get("cooldownSeconds", d.RETRAIN_COOLDOWN_SECONDS)),
        max_per_day=int(raw.get("maxPerDay", d.RETRAIN_MAX_PER_DAY)),
        max_regression=float((raw.get("gate") or {}).get("maxRegression", 0.01)),
        approval="manual" if approval == "manual" else "auto",
        output_uri=output,
        output_secret=output_secret,
    )

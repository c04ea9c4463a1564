"""``CARD.yaml``: what only the model's author can say, merged into the card.

Keys (camelCase or snake_case)::

    intendedUse: Rank accounts by the risk of churning next month.
    outOfScope: [Credit decisions.]
    ethicalConsiderations: [Plan and region correlate with income.]
    caveats: [Trained on one year of data.]
    directionalChecks:
      - {feature: support_tickets, direction: increasing, tolerance: 0.1}
    allowUnseen: [region]          # categorical features whose new values are served
    features:                      # optional, per feature
      monthly_fee: {description: "EUR per month", minimum: 0}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldeploy.server.card import DirectionalCheck

_KEYS = {
    "intendedUse": "intended_use",
    "outOfScope": "out_of_scope",
    "ethicalConsiderations": "ethical_considerations",
    "directionalChecks": "directional_checks",
    "allowUnseen": "allow_unseen",
}
_KNOWN = {
    "intended_use",
    "out_of_scope",
    "ethical_considerations",
    "caveats",
    "directional_checks",
    "allow_unseen",
    "features",
}


class CardFileError(ValueError):
    """A CARD.yaml that cannot be used."""


@dataclass(frozen=True)
class CardText:
    """The author's part of a model card."""

    intended_use: str = ""
    out_of_scope: tuple[str, ...] = ()
    ethical_considerations: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()
    directional_checks: tuple[DirectionalCheck, ...] = ()
    allow_unseen: tuple[str, ...] = ()
    features: dict[str, dict[str, Any]] = field(default_factory=dict)


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CardFileError(f"{key}: must be a list of strings")
    return tuple(value)


def parse(data: Any, source: str = "CARD.yaml") -> CardText:
    """A parsed CARD.yaml document to ``CardText``, naming the first bad key."""
    if data is None:
        return CardText()
    if not isinstance(data, dict):
        raise CardFileError(f"{source}: must be a mapping of keys")
    norm = {_KEYS.get(k, k): v for k, v in data.items()}
    for key in norm:
        if key not in _KNOWN:
            raise CardFileError(
                f"{source}: unknown key {key!r} (known: {', '.join(sorted(_KNOWN))})"
            )
    checks = []
    for i, item in enumerate(norm.get("directional_checks") or []):
        if not isinstance(item, dict) or "feature" not in item or "direction" not in item:
            raise CardFileError(f"{source}: directionalChecks[{i}] needs feature and direction")
        checks.append(
            DirectionalCheck(
                str(item["feature"]), str(item["direction"]), float(item.get("tolerance", 0.10))
            )
        )
    features = norm.get("features") or {}
    if not isinstance(features, dict):
        raise CardFileError(f"{source}: features must map feature names to settings")
    unseen = list(_strings(norm.get("allow_unseen"), "allowUnseen"))
    for fname, settings in features.items():
        if not isinstance(settings, dict):
            raise CardFileError(f"{source}: features.{fname} must be a mapping")
        if settings.get("allowUnseen") or settings.get("allow_unseen"):
            unseen.append(str(fname))
    intended = norm.get("intended_use", "")
    if not isinstance(intended, str):
        raise CardFileError(f"{source}: intendedUse must be a string")
    return CardText(
        intended_use=intended,
        out_of_scope=_strings(norm.get("out_of_scope"), "outOfScope"),
        ethical_considerations=_strings(
            norm.get("ethical_considerations"), "ethicalConsiderations"
        ),
        caveats=_strings(norm.get("caveats"), "caveats"),
        directional_checks=tuple(checks),
        allow_unseen=tuple(dict.fromkeys(unseen)),
        features={str(k): dict(v) for k, v in features.items()},
    )


def read_card_file(path: Path) -> CardText:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CardFileError(f"{path}: {exc}") from None
    return parse(data, str(path))

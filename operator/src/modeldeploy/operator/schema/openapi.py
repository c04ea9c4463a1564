"""Small builders of OpenAPI v3 schema fragments (what a CRD's validation schema is made of)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
CONDITION_PATTERN = r"^\s*result\s*(<=|>=|==|!=|<|>)\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$"


def _obj(
    props: dict[str, Schema],
    *,
    required: list[str] | None = None,
    description: str = "",
    default: Any = None,
    rules: list[tuple[str, str]] | None = None,
) -> Schema:
    """An object schema; ``rules`` are (CEL rule, message) pairs."""
    out: Schema = {"type": "object", "properties": props}
    if description:
        out["description"] = description
    if required:
        out["required"] = required
    if default is not None:
        out["default"] = default
    if rules:
        out["x-kubernetes-validations"] = [{"rule": r, "message": m} for r, m in rules]
    return out


def _str(description: str = "", **extra: Any) -> Schema:
    return {"type": "string", **({"description": description} if description else {}), **extra}


def _int(description: str = "", **extra: Any) -> Schema:
    return {"type": "integer", **({"description": description} if description else {}), **extra}


def _num(description: str = "", **extra: Any) -> Schema:
    return {"type": "number", **({"description": description} if description else {}), **extra}


def _bool(description: str = "", **extra: Any) -> Schema:
    return {"type": "boolean", **({"description": description} if description else {}), **extra}


def _duration(description: str, default: str | None = None) -> Schema:
    extra: dict[str, Any] = {"pattern": DURATION_PATTERN, "maxLength": 32}
    if default is not None:
        extra["default"] = default
    return _str(description + " A duration such as 30s, 5m or 1h30m.", **extra)


def _list(items: Schema, description: str = "", max_items: int = 64, **extra: Any) -> Schema:
    out: Schema = {"type": "array", "items": items, "maxItems": max_items, **extra}
    if description:
        out["description"] = description
    return out


def _exactly_one(*keys: str) -> str:
    return "[" + ", ".join(f"has(self.{k})" for k in keys) + "].filter(x, x).size() == 1"


def _quantity_map() -> Schema:
    return {
        "type": "object",
        "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
        },
    }

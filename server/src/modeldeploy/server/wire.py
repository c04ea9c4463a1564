"""The request side of the JSON API: errors, body parsing, content type and feedback.

Every refusal is a ``RequestError`` naming the field and the problem; ``error_json`` is the
body each 4xx answer carries.
"""

from __future__ import annotations

import math
from typing import Any

import orjson


class RequestError(Exception):
    """A request the server refuses, with the HTTP status, the field and the problem."""

    def __init__(self, status: int, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.status = status
        self.field = field
        self.problem = problem


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def parse_json(body: bytes) -> Any:
    """Parse a request body; malformed JSON (including NaN and Infinity literals) is a 400."""
    if not body:
        raise RequestError(400, "body", "is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "body", f"is not valid JSON: {exc}") from None


def check_content_type(value: bytes | None) -> None:
    """Only ``application/json`` (with any parameters) is accepted."""
    if value is None:
        raise RequestError(415, "content-type", "header is missing; send application/json")
    media = value.split(b";", 1)[0].strip().lower()
    if media != b"application/json":
        raise RequestError(
            415, "content-type", f"is {value.decode('latin-1')!r}; send application/json"
        )


def parse_feedback(payload: Any, classes: tuple[Any, ...] | None) -> tuple[str, list[Any]]:
    """``{"request_id": ID, "labels": [...]}`` (or ``"label": x`` for one row) to its parts.

    Labels are classes (numbers or strings, as the model's) for classifiers, finite numbers
    for regressors.
    """
    if type(payload) is not dict:
        raise RequestError(422, "body", f"must be a JSON object, got {json_type(payload)}")
    for key in payload:
        if key not in ("request_id", "labels", "label"):
            raise RequestError(
                422, str(key), "is not an accepted field (request_id, labels or label)"
            )
    request_id = payload.get("request_id")
    if request_id is None:
        raise RequestError(422, "request_id", "is missing")
    if type(request_id) is not str or not request_id:
        raise RequestError(
            422, "request_id", f"must be a non-empty string, got {json_type(request_id)}"
        )
    if ("labels" in payload) == ("label" in payload):
        raise RequestError(
            422, "labels", "give either 'labels' (one per instance) or 'label' (one instance)"
        )
    labels = payload["labels"] if "labels" in payload else [payload["label"]]
    field_name = "labels" if "labels" in payload else "label"
    if type(labels) is not list or not labels:
        raise RequestError(422, field_name, "must be a non-empty array")
    out: list[Any] = []
    strings = classes is not None and any(isinstance(c, str) for c in classes)
    for k, v in enumerate(labels):
        where = f"labels[{k}]" if field_name == "labels" else "label"
        if strings:
            if type(v) is not str:
                raise RequestError(422, where, f"must be a class name (string), got {json_type(v)}")
        elif type(v) not in (int, float) or not math.isfinite(v):
            raise RequestError(422, where, f"must be a finite number, got {json_type(v)}")
        if classes is not None and v not in classes:
            raise RequestError(
                422, where, f"{v!r} is not a class of this model ({', '.join(map(str, classes))})"
            )
        out.append(v if strings else float(v))
    return request_id, out


def error_json(error: RequestError, model: tuple[str, str], request_id: str) -> bytes:
    """The error body every 4xx carries: field, problem, model and request id."""
    return orjson.dumps(
        {
            "error": {"field": error.field, "problem": error.problem, "message": str(error)},
            "model_name": model[0],
            "model_version": model[1],
            "request_id": request_id,
        }
    )

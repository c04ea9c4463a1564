"""Open Inference Protocol (KServe V2) input tensors to rows, checked against the schema.

One tensor per feature (``BYTES`` strings, ``BOOL``, numeric types), or, for all-numeric
models, one ``[rows, features]`` tensor. Every refusal names the tensor, the index and the
feature.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from modeldeploy.server.arrays import FloatArray
from modeldeploy.server.validation import BOOL, NUMBER, NUMERIC_DATATYPES, STRING
from modeldeploy.server.wire import RequestError, json_type

if TYPE_CHECKING:  # pragma: no cover
    from modeldeploy.server.validation import InputSchema


def rows_from_infer(
    self: InputSchema, payload: Any
) -> tuple[FloatArray | list[list[Any]], str | None]:
    """An OIP v2 inference request to rows, plus the client's ``id`` if it sent one.

    Two layouts are accepted: one tensor per feature named after it, of shape ``[rows]``
    or ``[rows, 1]`` (``BYTES`` for string categories, ``BOOL`` for booleans, a numeric
    type otherwise: what the metadata lists), or, for all-numeric models, one tensor of
    shape ``[rows, features]`` (features in the card's order, data flat or nested).
    """
    if type(payload) is not dict:
        raise RequestError(
            422, "body", f"must be a JSON object with 'inputs', got {json_type(payload)}"
        )
    allowed = {"id", "inputs", "outputs", "parameters"}
    for key in payload:
        if key not in allowed:
            raise RequestError(422, str(key), "is not a field of an inference request")
    req_id = payload.get("id")
    if req_id is not None and type(req_id) is not str:
        raise RequestError(422, "id", f"must be a string, got {json_type(req_id)}")
    inputs = payload.get("inputs")
    if inputs is None:
        raise RequestError(422, "inputs", "is missing")
    if type(inputs) is not list or not inputs:
        raise RequestError(422, "inputs", "must be a non-empty array of tensors")
    tensors = [_tensor(self, t, i) for i, t in enumerate(inputs)]
    width = len(self.names)
    first_name, first_shape, _ = tensors[0]
    single = len(tensors) == 1 and (
        first_name not in self.index
        or (width > 1 and len(first_shape) == 2 and first_shape[1] == width)
    )
    if single and not self.numeric_only:
        raise RequestError(
            422,
            "inputs",
            "send one tensor per feature (this model has string or boolean features): "
            + ", ".join(self.names),
        )
    if single:
        name, shape, data = tensors[0]
        if len(shape) != 2 or shape[1] != width:
            raise RequestError(
                422,
                "inputs[0].shape",
                f"must be [rows, {width}] for one tensor of all features, got {shape}",
            )
        self.check_count(shape[0], "inputs[0].shape")
        arr = np.asarray(data, dtype=np.float64).reshape(shape[0], width)

        def where(r: int, c: int) -> str:
            return f"inputs[0].data[{r * width + c}] ({self.names[c]}, row {r})"

    else:
        by_name: dict[str, tuple[int, list[int], list[Any]]] = {}
        for i, (name, shape, data) in enumerate(tensors):
            if name not in self.index:
                raise RequestError(
                    422,
                    f"inputs[{i}].name",
                    f"{name!r} is not a feature of this model (features: {', '.join(self.names)})",
                )
            if name in by_name:
                raise RequestError(422, f"inputs[{i}].name", f"{name!r} is given twice")
            if not (len(shape) == 1 or len(shape) == 2 and shape[1] == 1):
                raise RequestError(
                    422,
                    f"inputs[{i}].shape",
                    f"must be [rows] or [rows, 1] for a per-feature tensor, got {shape}",
                )
            by_name[name] = (i, shape, data)
        missing = [n for n in self.names if n not in by_name]
        if missing:
            raise RequestError(
                422,
                f"inputs.{missing[0]}",
                f"is missing (missing features: {', '.join(map(repr, missing))}; send one "
                "tensor per feature, as the model metadata lists)",
            )
        counts = {by_name[n][1][0] for n in self.names}
        if len(counts) != 1:
            raise RequestError(
                422,
                "inputs",
                f"per-feature tensors must have the same number of rows, got {sorted(counts)}",
            )
        rows = counts.pop()
        self.check_count(rows, "inputs[0].shape")
        order = [by_name[n][0] for n in self.names]
        if not self.numeric_only:
            return _rows_from_columns(self, [by_name[n][2] for n in self.names], order), req_id
        arr = np.column_stack([np.asarray(by_name[n][2], dtype=np.float64) for n in self.names])

        def where(r: int, c: int) -> str:
            return f"inputs[{order[c]}].data[{r}] ({self.names[c]})"

    self.check_values(arr, where)
    return arr, req_id


def _rows_from_columns(
    self: InputSchema, columns: list[list[Any]], order: list[int]
) -> list[list[Any]]:
    """Per-feature tensors of a schema with strings or booleans to checked rows."""
    rows = [list(r) for r in zip(*columns, strict=True)]
    for r, row in enumerate(rows):

        def where(c: int, r: int = r) -> str:
            return f"inputs[{order[c]}].data[{r}] ({self.names[c]})"

        self.check_row(row, r, where)
    return rows


def _tensor(self: InputSchema, tensor: Any, i: int) -> tuple[str, list[int], list[Any]]:
    """Check one OIP tensor: name, shape, datatype, and data matching the shape."""
    where = f"inputs[{i}]"
    if type(tensor) is not dict:
        raise RequestError(422, where, f"must be a tensor object, got {json_type(tensor)}")
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise RequestError(422, f"{where}.{key}", "is missing")
    for key in tensor:
        if key not in ("name", "shape", "datatype", "data", "parameters"):
            raise RequestError(422, f"{where}.{key}", "is not a field of a tensor")
    name, shape, datatype, data = (
        tensor["name"],
        tensor["shape"],
        tensor["datatype"],
        tensor["data"],
    )
    if type(name) is not str:
        raise RequestError(422, f"{where}.name", f"must be a string, got {json_type(name)}")
    if type(shape) is not list or not shape or any(type(d) is not int or d < 0 for d in shape):
        raise RequestError(
            422, f"{where}.shape", f"must be an array of non-negative integers, got {shape!r}"
        )
    kind = self.types[self.index[name]] if name in self.index else NUMBER
    expected_type = {STRING: "BYTES", BOOL: "BOOL"}.get(kind)
    if expected_type is not None and datatype != expected_type:
        raise RequestError(
            422, f"{where}.datatype", f"must be {expected_type} for {name!r}, got {datatype!r}"
        )
    if expected_type is None and (type(datatype) is not str or datatype not in NUMERIC_DATATYPES):
        raise RequestError(
            422,
            f"{where}.datatype",
            f"must be a numeric tensor type ({', '.join(sorted(NUMERIC_DATATYPES))}), got "
            f"{datatype!r}",
        )
    flat = _flatten(data, f"{where}.data")
    expected = math.prod(shape)
    if len(flat) != expected:
        raise RequestError(
            422, f"{where}.data", f"has {len(flat)} values, shape {shape} needs {expected}"
        )
    if expected_type is not None:
        return name, shape, flat  # values are checked row by row against the schema
    allow_bool = datatype == "BOOL"
    for k, v in enumerate(flat):
        t = type(v)
        if t is not float and t is not int and not (allow_bool and t is bool):
            raise RequestError(422, f"{where}.data[{k}]", f"must be a number, got {json_type(v)}")
    return name, shape, flat


def _flatten(data: Any, where: str, max_depth: int = 4) -> list[Any]:
    """OIP data may be flat or nested in row-major order; return it flat."""
    if type(data) is not list:
        raise RequestError(422, where, f"must be an array, got {json_type(data)}")
    if not data or type(data[0]) is not list:
        return data
    out: list[Any] = []

    def walk(node: list[Any], depth: int) -> None:
        if depth > max_depth:
            raise RequestError(422, where, f"is nested more than {max_depth} levels deep")
        for item in node:
            if type(item) is list:
                walk(item, depth + 1)
            else:
                out.append(item)

    walk(data, 1)
    return out

"""Request validation against the card's input schema, on the hot path.

Every rejection is a ``RequestError`` whose message names the field and the problem
(``instances[3].error_pct: must be a number, got string``). The happy path is cheap: one
type check per value in Python, then one numpy array per request whose values are checked
with a handful of vectorised comparisons; the slow, precise search for the offending field
runs only when something is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeldeploy.server.arrays import FloatArray, IndexArray
from modeldeploy.server.card import CATEGORICAL, INTEGER, ModelCard
from modeldeploy.server.wire import RequestError, json_type

# The largest finite float: integers beyond it cannot become numbers.
_LARGEST = float(np.finfo(np.float64).max)

# Open Inference Protocol tensor types that carry numbers.
NUMERIC_DATATYPES = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
    }
)


@dataclass(frozen=True)
class InputSchema:
    """The card's input schema compiled into arrays for vectorised checks."""

    names: tuple[str, ...]
    name_set: frozenset[str]
    minimum: FloatArray
    maximum: FloatArray
    integer_columns: IndexArray
    categorical: tuple[tuple[int, FloatArray], ...]
    max_rows: int
    index: dict[str, int] = field(default_factory=dict)
    # Per column (minimum, maximum, integral, categories or None) for the per-value checks.
    columns: tuple[tuple[float, float, bool, frozenset[float] | None], ...] = ()

    @classmethod
    def from_card(cls, card: ModelCard, max_rows: int) -> InputSchema:
        specs = card.features
        return cls(
            names=card.feature_names,
            name_set=frozenset(card.feature_names),
            minimum=np.array([-math.inf if s.minimum is None else s.minimum for s in specs]),
            maximum=np.array([math.inf if s.maximum is None else s.maximum for s in specs]),
            integer_columns=np.array(
                [i for i, s in enumerate(specs) if s.kind == INTEGER], dtype=np.intp
            ),
            categorical=tuple(
                (i, np.asarray(s.categories, dtype=np.float64))
                for i, s in enumerate(specs)
                if s.kind == CATEGORICAL
            ),
            max_rows=max_rows,
            index={name: i for i, name in enumerate(card.feature_names)},
            columns=tuple(
                (
                    -_LARGEST if s.minimum is None else max(s.minimum, -_LARGEST),
                    _LARGEST if s.maximum is None else min(s.maximum, _LARGEST),
                    s.kind == INTEGER,
                    frozenset(float(c) for c in s.categories) if s.kind == CATEGORICAL else None,
                )
                for s in specs
            ),
        )

    # --- the plain ``/predict`` shape ---------------------------------------------------

    def rows_from_predict(self, payload: Any) -> list[list[float | int]]:
        """``{"instances": [{feature: value, ...}, ...]}`` to rows of numbers in the card's order.

        Values are checked one by one in plain Python (a few comparisons each), which for the
        small requests of online serving is cheaper than building and checking an array;
        the batcher makes one array of all the rows of a batch.
        """
        if type(payload) is not dict:
            raise RequestError(
                422, "body", f"must be a JSON object with 'instances', got {json_type(payload)}"
            )
        if len(payload) != 1 or "instances" not in payload:
            if "instances" not in payload:
                raise RequestError(422, "instances", "is missing")
            extra = sorted(k for k in payload if k != "instances")
            raise RequestError(422, extra[0], "is not an accepted field (only 'instances')")
        instances = payload["instances"]
        if type(instances) is not list:
            raise RequestError(
                422, "instances", f"must be an array of objects, got {json_type(instances)}"
            )
        self._check_count(len(instances), "instances")
        names = self.names
        name_set = self.name_set
        width = len(names)
        columns = self.columns
        rows: list[list[Any]] = []
        append = rows.append
        for i, inst in enumerate(instances):
            if type(inst) is not dict:
                raise RequestError(
                    422,
                    f"instances[{i}]",
                    f"must be an object of feature values, got {json_type(inst)}",
                )
            if len(inst) != width or inst.keys() != name_set:
                self._raise_keys(inst, f"instances[{i}]")
            row = [inst[n] for n in names]
            for v, (low, high, integral, categories) in zip(row, columns, strict=True):
                t = type(v)
                if t is float:
                    # v - v is 0.0 only for finite v; NaN and infinities fail here.
                    if v - v != 0.0 or (integral and not v.is_integer()):
                        self._raise_row(row, i)
                elif t is not int:
                    self._raise_row(row, i)
                if v < low or v > high or (categories is not None and v not in categories):
                    self._raise_row(row, i)
            append(row)
        return rows

    def _raise_row(self, row: list[Any], i: int) -> None:
        """Name the first bad value of a row that failed the quick checks."""
        for name, v, (low, high, integral, categories) in zip(
            self.names, row, self.columns, strict=True
        ):
            where = f"instances[{i}].{name}"
            if type(v) is not float and type(v) is not int:
                raise RequestError(422, where, f"must be a number, got {json_type(v)}")
            if type(v) is int and abs(v) > _LARGEST:
                raise RequestError(422, where, "is too large to be a number")
            value = float(v)
            c = self.index[name]
            if (
                not math.isfinite(value)
                or value < low
                or value > high
                or (integral and not value.is_integer())
                or (categories is not None and value not in categories)
            ):
                raise RequestError(422, where, self._value_problem(c, value))
        raise RequestError(
            422, f"instances[{i}]", "has an invalid value"
        )  # pragma: no cover - unreachable

    def _check_count(self, rows: int, field: str) -> None:
        if rows == 0:
            raise RequestError(422, field, "is empty; send at least one row")
        if rows > self.max_rows:
            raise RequestError(413, field, f"has {rows} rows, at most {self.max_rows} per request")

    def _raise_keys(self, inst: dict[str, Any], where: str) -> None:
        missing = [n for n in self.names if n not in inst]
        if missing:
            raise RequestError(422, f"{where}.{missing[0]}", "is missing")
        extra = sorted(str(k) for k in inst if k not in self.name_set)
        raise RequestError(
            422,
            f"{where}.{extra[0]}",
            f"is not a feature of this model (features: {', '.join(self.names)})",
        )

    # --- value checks shared by both request shapes -------------------------------------

    def check_values(self, arr: FloatArray, where: Callable[[int, int], str]) -> None:
        """Finite, inside the declared range, integral where integer, in vocabulary where
        categorical."""
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(arr) | (arr < self.minimum) | (arr > self.maximum)
        if self.integer_columns.size:
            ints = arr[:, self.integer_columns]
            bad[:, self.integer_columns] |= ints != np.floor(ints)
        for col, cats in self.categorical:
            bad[:, col] |= ~np.isin(arr[:, col], cats)
        if bad.any():
            r, c = (int(v) for v in np.argwhere(bad)[0])
            raise RequestError(422, where(r, c), self._value_problem(c, float(arr[r, c])))

    def _value_problem(self, col: int, value: float) -> str:
        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        for c, cats in self.categorical:
            if c == col:
                allowed = ", ".join(f"{x:g}" for x in cats)
                return f"{value:g} is not a known category (allowed: {allowed})"
        if value < self.minimum[col]:
            return f"must be at least {self.minimum[col]:g}, got {value:g}"
        if value > self.maximum[col]:
            return f"must be at most {self.maximum[col]:g}, got {value:g}"
        return f"must be an integer, got {value:g}"

    # --- the Open Inference Protocol shape ----------------------------------------------

    def rows_from_infer(self, payload: Any) -> tuple[FloatArray, str | None]:
        """An OIP v2 inference request to rows, plus the client's ``id`` if it sent one.

        Two layouts are accepted: one tensor of shape ``[rows, features]`` (features in the
        card's order, data flat or nested), or one tensor per feature named after it, of
        shape ``[rows]`` or ``[rows, 1]``.
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
        tensors = [self._tensor(t, i) for i, t in enumerate(inputs)]
        width = len(self.names)
        first_name, first_shape, _ = tensors[0]
        single = len(tensors) == 1 and (
            first_name not in self.index
            or (width > 1 and len(first_shape) == 2 and first_shape[1] == width)
        )
        if single:
            name, shape, data = tensors[0]
            if len(shape) != 2 or shape[1] != width:
                raise RequestError(
                    422,
                    "inputs[0].shape",
                    f"must be [rows, {width}] for one tensor of all features, got {shape}",
                )
            self._check_count(shape[0], "inputs[0].shape")
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
                        f"{name!r} is not a feature of this model (features: "
                        f"{', '.join(self.names)})",
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
                    "is missing (send one tensor per feature, or one [rows, features] tensor)",
                )
            counts = {by_name[n][1][0] for n in self.names}
            if len(counts) != 1:
                raise RequestError(
                    422,
                    "inputs",
                    f"per-feature tensors must have the same number of rows, got {sorted(counts)}",
                )
            rows = counts.pop()
            self._check_count(rows, "inputs[0].shape")
            arr = np.column_stack([np.asarray(by_name[n][2], dtype=np.float64) for n in self.names])
            order = [by_name[n][0] for n in self.names]

            def where(r: int, c: int) -> str:
                return f"inputs[{order[c]}].data[{r}] ({self.names[c]})"

        self.check_values(arr, where)
        return arr, req_id

    def _tensor(self, tensor: Any, i: int) -> tuple[str, list[int], list[Any]]:
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
        if type(datatype) is not str or datatype not in NUMERIC_DATATYPES:
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
        allow_bool = datatype == "BOOL"
        for k, v in enumerate(flat):
            t = type(v)
            if t is not float and t is not int and not (allow_bool and t is bool):
                raise RequestError(
                    422, f"{where}.data[{k}]", f"must be a number, got {json_type(v)}"
                )
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

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
from modeldeploy.server.card import BOOLEAN, CATEGORICAL, INTEGER, FeatureSpec, ModelCard
from modeldeploy.server.wire import RequestError, json_type

# The largest finite float: integers beyond it cannot become numbers.
_LARGEST = float(np.finfo(np.float64).max)
# Integer features: the integers a float64 (and an int64 column) hold exactly.
_LARGEST_INTEGER = float(2**53)


def _bounds(spec: FeatureSpec) -> tuple[float, float]:
    """The values a feature may take: its declared range, within what its type can hold."""
    limit = _LARGEST_INTEGER if spec.kind == INTEGER else _LARGEST
    low = -limit if spec.minimum is None else max(spec.minimum, -limit)
    high = limit if spec.maximum is None else min(spec.maximum, limit)
    return low, high


# What a feature's values must be.
NUMBER, STRING, BOOL = 0, 1, 2

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
    # Per column (minimum, maximum, integral, categories or None) for the numeric checks.
    columns: tuple[tuple[float, float, bool, frozenset[float] | None], ...] = ()
    # Per column: NUMBER, STRING (a string category) or BOOL, what a value must be.
    types: tuple[int, ...] = ()
    # Per string column: its categories, or None when unseen values are allowed.
    strings: dict[int, frozenset[str] | None] = field(default_factory=dict)
    numeric_only: bool = True

    @classmethod
    def from_card(cls, card: ModelCard, max_rows: int) -> InputSchema:
        specs = card.features
        return cls(
            names=card.feature_names,
            name_set=frozenset(card.feature_names),
            minimum=np.array(
                [
                    _bounds(s)[0] if s.kind == INTEGER or s.minimum is not None else -math.inf
                    for s in specs
                ]
            ),
            maximum=np.array(
                [
                    _bounds(s)[1] if s.kind == INTEGER or s.maximum is not None else math.inf
                    for s in specs
                ]
            ),
            integer_columns=np.array(
                [i for i, s in enumerate(specs) if s.kind == INTEGER], dtype=np.intp
            ),
            categorical=tuple(
                (i, np.asarray(s.categories, dtype=np.float64))
                for i, s in enumerate(specs)
                if s.kind == CATEGORICAL and not s.string_categories and not s.allow_unseen
            ),
            max_rows=max_rows,
            index={name: i for i, name in enumerate(card.feature_names)},
            columns=tuple(
                (
                    *_bounds(s),
                    s.kind == INTEGER,
                    frozenset(float(c) for c in s.categories)
                    if s.kind == CATEGORICAL and not s.string_categories and not s.allow_unseen
                    else None,
                )
                for s in specs
            ),
            types=tuple(
                STRING if s.string_categories else BOOL if s.kind == BOOLEAN else NUMBER
                for s in specs
            ),
            strings={
                i: None if s.allow_unseen else frozenset(s.categories)
                for i, s in enumerate(specs)
                if s.string_categories
            },
            numeric_only=not any(s.string_categories or s.kind == BOOLEAN for s in specs),
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
        simple = self.numeric_only
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
            if simple:
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
            else:
                self.check_row(row, i)
            append(row)
        return rows

    def check_row(self, row: list[Any], i: int, where: Callable[[int], str] | None = None) -> None:
        """Check one row of a schema with strings or booleans (raises on the first bad value)."""
        strings = self.strings
        for j, (v, kind, (low, high, integral, categories)) in enumerate(
            zip(row, self.types, self.columns, strict=True)
        ):
            t = type(v)
            if kind == STRING:
                if t is not str:
                    self._raise_row(row, i, where)
                allowed = strings[j]
                if allowed is not None and v not in allowed:
                    self._raise_row(row, i, where)
            elif kind == BOOL:
                if t is not bool:
                    self._raise_row(row, i, where)
            else:
                if t is float:
                    if v - v != 0.0 or (integral and not v.is_integer()):
                        self._raise_row(row, i, where)
                elif t is not int:
                    self._raise_row(row, i, where)
                if v < low or v > high or (categories is not None and v not in categories):
                    self._raise_row(row, i, where)

    def _raise_row(self, row: list[Any], i: int, where: Callable[[int], str] | None = None) -> None:
        """Name the first bad value of a row that failed the quick checks."""
        for name, v, kind, (low, high, integral, categories) in zip(
            self.names, row, self.types, self.columns, strict=True
        ):
            c = self.index[name]
            at = f"instances[{i}].{name}" if where is None else where(c)
            if kind == STRING:
                if type(v) is not str:
                    raise RequestError(422, at, f"must be a string, got {json_type(v)}")
                allowed = self.strings[c]
                if allowed is not None and v not in allowed:
                    shown = ", ".join(repr(x) for x in sorted(allowed)[:20])
                    raise RequestError(
                        422, at, f"{v!r} is not a known category of {name!r} (known: {shown})"
                    )
                continue
            if kind == BOOL:
                if type(v) is not bool:
                    raise RequestError(422, at, f"must be true or false, got {json_type(v)}")
                continue
            if type(v) is not float and type(v) is not int:
                raise RequestError(422, at, f"must be a number, got {json_type(v)}")
            if type(v) is int and abs(v) > _LARGEST:
                raise RequestError(422, at, "is too large to be a number")
            value = float(v)
            if (
                not math.isfinite(value)
                or value < low
                or value > high
                or (integral and not value.is_integer())
                or (categories is not None and value not in categories)
            ):
                raise RequestError(422, at, self._value_problem(c, value))
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
        if len(missing) == 1:
            raise RequestError(422, f"{where}.{missing[0]}", "is missing")
        if missing:
            raise RequestError(
                422,
                f"{where}.{missing[0]}",
                f"is missing (missing features: {', '.join(map(repr, missing))})",
            )
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
                name = self.names[col]
                return f"{value:g} is not a known category of {name!r} (allowed: {allowed})"
        if value < self.minimum[col]:
            return f"must be at least {self.minimum[col]:g}, got {value:g}"
        if value > self.maximum[col]:
            return f"must be at most {self.maximum[col]:g}, got {value:g}"
        return f"must be an integer, got {value:g}"

    # --- the Open Inference Protocol shape (parsed in ``tensors``) ----------------------

    def rows_from_infer(self, payload: Any) -> tuple[FloatArray | list[list[Any]], str | None]:
        """An OIP v2 inference request to rows, plus the client's ``id`` if it sent one."""
        from modeldeploy.server.tensors import rows_from_infer

        return rows_from_infer(self, payload)

    def check_count(self, rows: int, field: str) -> None:
        self._check_count(rows, field)

"""What the model is given, built once per batch, and the codes the monitor bins.

A model fitted on a DataFrame (it has ``feature_names_in_``) gets a DataFrame with the
training columns, in the training order, with the training dtypes (``float64``, ``int64``,
``bool``, ``object`` strings, ``category``); a model fitted on an array gets a float array.
Beside it the batch is encoded for the monitor as one float matrix: numeric columns as they
are, categorical and boolean columns as the index of their category (``len(categories)``
for a value the card allows but the reference never had: the unseen bin).

The all-numeric array model (the example) keeps its fast path: one ``float64`` array is both
the model's input and, where its categories are ``0..k-1``, the monitor's codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeldeploy.server.arrays import FloatArray
from modeldeploy.server.card import BOOLEAN, INTEGER, FeatureSpec

# A request's rows: validated Python values in the card's order, or a float array.
Block = FloatArray | list[list[Any]]


@dataclass(frozen=True)
class Batch:
    """One batch: the model's input and the monitor's float codes, both ``len(rows)`` long."""

    model_input: Any
    codes: FloatArray
    rows: int


class Encoder:
    """Builds the model's input and the monitor's codes from the card's input schema."""

    def __init__(self, features: Sequence[FeatureSpec], input_format: str = "array") -> None:
        self.features = tuple(features)
        specs = self.features
        self.names = [s.name for s in specs]
        self.dataframe = input_format == "dataframe"
        self.numeric_only = all(not s.string_categories for s in specs)
        # (column, sorted categories as an array) of every discrete column.
        self._discrete: list[tuple[int, Any]] = []
        self._identity_codes = True
        for j, s in enumerate(specs):
            if not s.discrete:
                continue
            if s.kind == BOOLEAN:
                cats: Any = np.array([0.0, 1.0])
            elif s.string_categories:
                cats = np.array(s.categories, dtype=object)
            else:
                cats = np.array(s.categories, dtype=np.float64)
            self._discrete.append((j, cats))
            if s.string_categories or list(cats) != list(range(len(cats))):
                self._identity_codes = False
        self._dtypes = [s.dtype or ("int64" if s.kind == INTEGER else "") for s in specs]

    # --- one batch ----------------------------------------------------------------------

    def build(self, blocks: Sequence[Block]) -> Batch:
        """The model input and the monitor codes for the rows of all ``blocks``."""
        if self.numeric_only:
            matrix = _float_matrix(blocks)
            codes = matrix if self._identity_codes else self._numeric_codes(matrix)
            model_input = self._frame_from_matrix(matrix) if self.dataframe else matrix
            return Batch(model_input, codes, len(matrix))
        rows: list[Any] = []
        for block in blocks:
            rows.extend(block.tolist() if isinstance(block, np.ndarray) else block)
        table = np.empty((len(rows), len(self.names)), dtype=object)
        table[:] = rows
        return self.from_table(table)

    def from_frame(self, frame: Any) -> Batch:
        """A batch from a DataFrame holding (at least) the feature columns."""
        return self.from_table(frame[self.names].to_numpy(dtype=object))

    def from_table(self, table: Any) -> Batch:
        """A batch from a 2-D object array of validated values (columns in card order)."""
        n = len(table)
        codes = np.empty((n, len(self.names)), dtype=np.float64)
        discrete = {j for j, _ in self._discrete}
        for j in range(len(self.names)):
            if j not in discrete:
                codes[:, j] = table[:, j].astype(np.float64)
        for j, cats in self._discrete:
            codes[:, j] = category_codes(table[:, j], cats)
        if self.dataframe:
            model_input: Any = self._frame({n: table[:, j] for j, n in enumerate(self.names)})
        else:
            model_input = codes.copy()
            for j, _ in self._discrete:
                model_input[:, j] = table[:, j].astype(np.float64)
        return Batch(model_input, codes, n)

    def _numeric_codes(self, matrix: FloatArray) -> FloatArray:
        codes = matrix.copy()
        for j, cats in self._discrete:
            codes[:, j] = category_codes(matrix[:, j], cats)
        return codes

    def _frame_from_matrix(self, matrix: FloatArray) -> Any:
        return self._frame({n: matrix[:, j] for j, n in enumerate(self.names)})

    def _frame(self, columns: dict[str, Any]) -> Any:
        """A DataFrame with the training dtypes, column by column."""
        import pandas as pd

        data: dict[str, Any] = {}
        for (name, values), spec, dtype in zip(
            columns.items(), self.features, self._dtypes, strict=True
        ):
            if dtype == "category":
                # By codes: a value the card allows but the categories lack becomes missing
                # (what pandas does for it), without building a Categorical from it.
                cats = list(spec.categories)
                kind = object if spec.string_categories else np.float64
                codes = category_codes(np.asarray(values, dtype=kind), np.array(cats, dtype=kind))
                codes[codes == len(cats)] = -1
                data[name] = pd.Categorical.from_codes(codes.astype(np.int64), categories=cats)
            elif dtype in ("", "float64", "float32"):
                data[name] = np.asarray(values, dtype=dtype or np.float64)
            elif dtype == "object":
                data[name] = np.asarray(values, dtype=object)
            elif dtype in ("str", "string"):
                data[name] = pd.array(np.asarray(values, dtype=object), dtype=dtype)
            else:
                data[name] = np.asarray(values).astype(dtype)
        return pd.DataFrame(data, columns=self.names, copy=False)


def _float_matrix(blocks: Sequence[Block]) -> FloatArray:
    """One float64 array of all the rows of a batch, built once."""
    if len(blocks) == 1:
        return np.asarray(blocks[0], dtype=np.float64)
    if all(type(b) is list for b in blocks):
        return np.array([row for block in blocks for row in block], dtype=np.float64)
    return np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks])


def category_codes(values: Any, categories: Any) -> FloatArray:
    """Index of each value in the sorted ``categories``; ``len(categories)`` when absent."""
    k = len(categories)
    if categories.dtype == object:
        lookup = {v: float(i) for i, v in enumerate(categories.tolist())}
        return np.array([lookup.get(v, float(k)) for v in values.tolist()], dtype=np.float64)
    arr = np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(categories, arr)
    found = idx < k
    found[found] = categories[idx[found]] == arr[found]
    return np.where(found, idx, k).astype(np.float64)

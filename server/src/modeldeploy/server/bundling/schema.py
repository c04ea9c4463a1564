"""The input schema of a user's model, inferred from its reference data.

Column order and names come from the model when it was fitted on a DataFrame
(``feature_names_in_``), from the data otherwise; dtypes become kinds: float -> numeric,
integer -> integer, bool -> boolean, string/object and pandas ``category`` -> categorical
(with the categories observed, or the dtype's own for ``category``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modeldeploy.server.card import BOOLEAN, CATEGORICAL, INTEGER, NUMERIC, FeatureSpec


class SchemaError(ValueError):
    """Reference data the schema cannot be inferred from (missing columns, missing values)."""


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON and the card hold."""
    return value.item() if hasattr(value, "item") else value


def feature_columns(model: Any, frame: Any, exclude: Sequence[str]) -> tuple[list[str], str]:
    """The model's input columns and its input format (``dataframe`` or ``array``)."""
    trained = getattr(model, "feature_names_in_", None)
    if trained is not None:
        names = [str(n) for n in trained]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise SchemaError(
                f"the data has no column {', '.join(map(repr, missing))} "
                "(the model was fitted on it)"
            )
        return names, "dataframe"
    names = [str(c) for c in frame.columns if c not in exclude]
    n_in = getattr(model, "n_features_in_", len(names))
    if n_in != len(names):
        raise SchemaError(
            f"the model takes {n_in} features, the data has {len(names)} columns besides "
            f"the target: {names}"
        )
    return names, "array"


def infer_features(
    frame: Any, names: Sequence[str], allow_unseen: Sequence[str] = (), dataframe: bool = True
) -> tuple[FeatureSpec, ...]:
    """One ``FeatureSpec`` per column of ``frame`` named in ``names``, in that order."""
    import pandas as pd

    specs = []
    unknown = [n for n in allow_unseen if n not in names]
    if unknown:
        raise SchemaError(f"allowUnseen names {unknown[0]!r}, which is not a feature")
    for name in names:
        column = frame[name]
        if column.isna().any():
            raise SchemaError(
                f"column {name!r} has missing values; fill or drop them before bundling "
                "(requests must carry a value for every feature)"
            )
        dtype = column.dtype
        keep = str(dtype) if dataframe else ""
        if isinstance(dtype, pd.CategoricalDtype):
            cats = sorted(plain(v) for v in dtype.categories)
            spec = FeatureSpec(name, CATEGORICAL, categories=tuple(cats), dtype="category")
        elif pd.api.types.is_bool_dtype(dtype):
            spec = FeatureSpec(name, BOOLEAN, categories=(False, True), dtype=keep)
        elif pd.api.types.is_integer_dtype(dtype):
            spec = FeatureSpec(name, INTEGER, dtype=keep or "")
        elif pd.api.types.is_float_dtype(dtype):
            spec = FeatureSpec(name, NUMERIC, dtype=keep)
        elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            values = [plain(v) for v in column.unique()]
            if not all(isinstance(v, str) for v in values):
                kinds = sorted({type(v).__name__ for v in values})
                raise SchemaError(
                    f"column {name!r} mixes value types ({', '.join(kinds)}); "
                    "give it one type (strings for categories)"
                )
            spec = FeatureSpec(name, CATEGORICAL, categories=tuple(sorted(values)), dtype=keep)
        else:
            raise SchemaError(f"column {name!r} has dtype {dtype}, which is not supported")
        if name in allow_unseen:
            if spec.kind != CATEGORICAL:
                raise SchemaError(f"allowUnseen: {name!r} is not a categorical feature")
            spec = FeatureSpec(**{**spec.__dict__, "allow_unseen": True})
        specs.append(spec)
    return tuple(specs)


def as_frame(data: Any, feature_names: Sequence[str] | None = None) -> Any:
    """A DataFrame of ``data`` (a DataFrame already, or a 2-D array with optional names)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise SchemaError(f"data must be a DataFrame or a 2-D array, got shape {arr.shape}")
    names = list(feature_names or [f"x{i}" for i in range(arr.shape[1])])
    return pd.DataFrame(arr, columns=names)


def read_table(path: Any) -> Any:
    """A CSV or Parquet file as a DataFrame (by its extension)."""
    import pandas as pd

    text = str(path)
    try:
        if text.lower().endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError, ImportError) as exc:
        raise SchemaError(f"{path}: cannot read it: {exc}") from None

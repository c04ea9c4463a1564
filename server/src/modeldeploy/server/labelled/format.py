"""The labelled-data store's rows and files: column layout, dtypes and file names.

A row is one labelled prediction: the reserved columns of ``contract.retrain`` first, then
the features under the card's names, each with the dtype the model was served: ``float64``,
``int64``, ``bool`` or ``str`` (string categories). Prediction and label share the model's
output dtype: strings for string classes, ``int64`` or ``bool`` for such classes, ``float64``
for regression and other numbers. Times are UTC timestamps with millisecond precision.

Files are ``MODEL/DATE/POD-FIRSTMS-SEQ.parquet``: DATE (``YYYY-MM-DD``, UTC) is the day of
every row in the file (the writer never lets a file cross midnight, so a reader can skip
whole days by folder), FIRSTMS the ``_md_time`` of its first row in milliseconds, SEQ the
writer's own counter. The card's name and the pod's are made path-safe the same way for the
writer and the reader (``segment``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from modeldeploy.server.batching import Rows
from modeldeploy.server.card import BOOLEAN, CLASSIFICATION, INTEGER, FeatureSpec, ModelCard
from modeldeploy.server.contract import retrain as r

SUFFIX = ".parquet"
# Strings: pandas 3's default string dtype, Python strings (object) on pandas 2; pyarrow
# strings in the file either way.
STRING = "str" if int(pd.__version__.split(".")[0]) >= 3 else "object"
TIME_DTYPE = "datetime64[ms, UTC]"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class Labelled(NamedTuple):
    """One accepted ``/feedback``: the request's validated rows (card order, as the request
    carried them), its predictions and labels (one per row) and both times (``time.time()``).
    Kept as references until the writer converts a whole file's worth at once."""

    request_id: str
    rows: Rows
    predictions: list[Any]
    labels: list[Any]
    predicted_at: float
    labelled_at: float


def segment(name: str) -> str:
    """``name`` as one safe path segment (letters, digits, ``.``, ``_``, ``-``)."""
    safe = _UNSAFE.sub("_", name) or "_"
    return "_" if safe in (".", "..") else safe


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, UTC).strftime("%Y-%m-%d")


def is_day(name: str) -> bool:
    return bool(_DATE.match(name))


def file_key(model: str, pod: str, first_ms: int, seq: int) -> str:
    """Where a file whose first row has ``first_ms`` goes, relative to the location."""
    return f"{segment(model)}/{day_of(first_ms)}/{segment(pod)}-{first_ms}-{seq:06d}{SUFFIX}"


def first_ms_of(key: str) -> int | None:
    """FIRSTMS of a file key, or None for a key that is not one of the store's files."""
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(SUFFIX) or name.startswith("."):
        return None
    parts = name[: -len(SUFFIX)].rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return int(parts[1])


def feature_dtype(spec: FeatureSpec) -> str:
    """The dtype a feature is stored with: what the model was served."""
    if spec.kind == BOOLEAN:
        return "bool"
    if spec.string_categories:
        return STRING
    if spec.kind == INTEGER or spec.dtype.startswith(("int", "uint")):
        return "int64"
    return "float64"


def output_dtype(classes: Sequence[Any] | None) -> str:
    """The dtype of predictions and labels: ``classes`` None for a regressor."""
    if not classes:
        return "float64"
    if any(isinstance(c, str) for c in classes):
        return STRING
    if all(isinstance(c, (bool, np.bool_)) for c in classes):
        return "bool"
    if all(isinstance(c, (int, np.integer)) for c in classes):
        return "int64"
    return "float64"


def empty_frame() -> pd.DataFrame:
    """No rows, the reserved columns only (predictions and labels of unknown dtype)."""
    return pd.DataFrame(
        {
            r.COLUMN_TIME: pd.Series([], dtype=TIME_DTYPE),
            r.COLUMN_PREDICTED_AT: pd.Series([], dtype=TIME_DTYPE),
            r.COLUMN_REQUEST_ID: pd.Series([], dtype=STRING),
            r.COLUMN_VERSION: pd.Series([], dtype=STRING),
            r.COLUMN_ROLE: pd.Series([], dtype=STRING),
            r.COLUMN_PREDICTION: pd.Series([], dtype=object),
            r.COLUMN_LABEL: pd.Series([], dtype=object),
        }
    )


def _column(values: Sequence[Any], dtype: str) -> Any:
    if dtype == STRING:
        return pd.array(list(values), dtype=STRING)
    return np.asarray(values).astype(dtype)


def _times(seconds: list[float]) -> Any:
    ms = np.round(np.asarray(seconds, dtype=np.float64) * 1000.0).astype(np.int64)
    return pd.to_datetime(ms, unit="ms", utc=True).as_unit("ms")


@dataclass(frozen=True)
class Layout:
    """The columns of one model's rows: the card's features and the output's dtype."""

    names: tuple[str, ...]
    dtypes: tuple[str, ...]
    target: str

    @classmethod
    def from_card(cls, card: ModelCard, classes: Sequence[Any] | None) -> Layout:
        """The layout of ``card``; ``classes`` the fitted model's (None for regression)."""
        kind_classes = classes if card.output.kind == CLASSIFICATION else None
        return cls(
            tuple(s.name for s in card.features),
            tuple(feature_dtype(s) for s in card.features),
            output_dtype(kind_classes),
        )

    def frame(self, chunks: Sequence[Labelled], version: str, role: str) -> pd.DataFrame:
        """One DataFrame of every row of ``chunks``, in order (the one conversion)."""
        request_ids: list[str] = []
        predicted: list[float] = []
        labelled: list[float] = []
        predictions: list[Any] = []
        labels: list[Any] = []
        rows: list[Any] = []
        for chunk in chunks:
            n = len(chunk.labels)
            request_ids += [chunk.request_id] * n
            predicted += [chunk.predicted_at] * n
            labelled += [chunk.labelled_at] * n
            predictions += chunk.predictions
            labels += chunk.labels
            block = chunk.rows
            rows += block.tolist() if isinstance(block, np.ndarray) else block
        n = len(labels)
        data: dict[str, Any] = {
            r.COLUMN_TIME: _times(labelled),
            r.COLUMN_PREDICTED_AT: _times(predicted),
            r.COLUMN_REQUEST_ID: _column(request_ids, STRING),
            r.COLUMN_VERSION: _column([version] * n, STRING),
            r.COLUMN_ROLE: _column([role] * n, STRING),
            r.COLUMN_PREDICTION: _column(predictions, self.target),
            r.COLUMN_LABEL: _column(labels, self.target),
        }
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.names]
        for name, dtype, values in zip(self.names, self.dtypes, columns, strict=True):
            data[name] = _column(values, dtype)
        return pd.DataFrame(data)

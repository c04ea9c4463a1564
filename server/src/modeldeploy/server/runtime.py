"""The loaded model as the server uses it: one call per batch, classes and scores from it.

For a classifier ``predict_proba`` runs once per batch and everything else is derived
from it: the predicted class is the arg-max (what ``predict`` itself does), and the value
exported to the prediction-sum metrics is the positive class's probability, so a
candidate that predicts differently shows as a shifted mean.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import sklearn

from modeldeploy.server.arrays import FloatArray, IndexArray, ValueArray
from modeldeploy.server.batching import Rows, Slice
from modeldeploy.server.bundle import Bundle
from modeldeploy.server.card import CLASSIFICATION, INTEGER, ModelCard
from modeldeploy.server.compiled import Proba, compiled_proba
from modeldeploy.server.frame import Batch, Encoder
from modeldeploy.server.monitor import Monitor


@dataclass(frozen=True)
class BatchResult:
    """Predictions for one batch. ``proba`` and ``class_index`` are ``None`` for regressors."""

    values: ValueArray
    scores: FloatArray
    proba: FloatArray | None
    class_index: IndexArray | None


class ModelRuntime:
    """Runs the verified pipeline on batches and feeds the monitor."""

    def __init__(self, bundle: Bundle, monitor: Monitor) -> None:
        self.bundle = bundle
        self.monitor = monitor
        card = bundle.card
        self.classification = card.output.kind == CLASSIFICATION
        self.encoder = Encoder(card.features, card.input_format)
        model = bundle.model
        if self.classification:
            self._classes = np.asarray(model.classes_)
            self.classes = [c.item() if hasattr(c, "item") else c for c in self._classes]
            self._positive = self.classes.index(card.output.positive_class)
            # Labels that are not numbers (strings) become plain lists before JSON.
            self.labels_are_objects = self._classes.dtype.kind in "OUSb"
            self._proba: Proba | None = None
            if self.encoder.dataframe or self.encoder.numeric_only:
                sample = sample_rows(card)
                if self.encoder.dataframe:
                    sample = self.encoder.build([sample.tolist()]).model_input
                self._proba = compiled_proba(model, sample)
        else:
            self.classes = []
            self.labels_are_objects = False

    def predict(self, batch: Batch) -> BatchResult:
        """One model call for all rows. Inputs were validated, so sklearn's re-checks are off."""
        rows = batch.model_input
        if self.classification:
            if self._proba is not None:  # no sklearn checks to switch off (about 4 us)
                proba = self._proba(rows)
            else:
                with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
                    proba = self.bundle.model.predict_proba(rows)
            index = proba.argmax(axis=1)
            result = BatchResult(
                self._classes[index],
                np.ascontiguousarray(proba[:, self._positive]),
                proba,
                index,
            )
        else:
            with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
                values = np.asarray(self.bundle.model.predict(rows), dtype=np.float64)
            result = BatchResult(values, values, None, None)
        self.monitor.observe_batch(batch.codes, result.scores, result.class_index)
        return result


def sample_rows(card: ModelCard, rows: int = 256, seed: int = 0) -> Any:
    """Valid rows near the reference distribution, to check a compiled model call against
    the model's own: categories as listed, numbers around the reference mean and spread (a
    float array when every feature is numeric, an object array otherwise)."""
    rng = np.random.default_rng(seed)
    columns = []
    for spec in card.features:
        if spec.discrete:
            picks = rng.integers(0, len(spec.categories), rows)
            columns.append(np.array([spec.categories[i] for i in picks], dtype=object))
            continue
        ref = card.reference_for(spec.name)
        values = ref.mean + (ref.std or 1.0) * 1.5 * rng.standard_normal(rows)
        if spec.kind == INTEGER:
            values = np.round(values)
        low = -np.inf if spec.minimum is None else spec.minimum
        high = np.inf if spec.maximum is None else spec.maximum
        clipped = np.clip(values, low, high)
        columns.append(clipped.astype(np.int64) if spec.kind == INTEGER else clipped)
    if all(not s.string_categories for s in card.features):
        return np.ascontiguousarray(np.column_stack(columns), dtype=np.float64)
    table = np.empty((rows, len(columns)), dtype=object)
    for j, column in enumerate(columns):
        table[:, j] = column.tolist()
    return table


class Remembered(NamedTuple):
    """What ``/feedback`` needs of one request: its predictions, and for the labelled-data
    store its validated input rows (references to the request's own rows, converted only
    when a label arrives) and when it was predicted (``time.time()``)."""

    part: Slice[BatchResult]
    rows: Rows | None
    predicted_at: float


class FeedbackStore:
    """Recent predictions by request id, so ``/feedback`` can score them; bounded, oldest out.

    ``keep_inputs`` (on when the labelled-data store is) also keeps each request's rows and
    time; off, a request costs what it did before (no rows held, no clock read).
    """

    def __init__(self, capacity: int, keep_inputs: bool = False) -> None:
        self.capacity = capacity
        self.keep_inputs = keep_inputs
        # Plain tuples (part, rows, predicted_at): a named tuple per request would cost more
        # than the dictionary update itself.
        self._items: OrderedDict[str, tuple[Slice[BatchResult], Rows | None, float]] = OrderedDict()

    def remember(self, request_id: str, part: Slice[BatchResult], rows: Rows) -> None:
        items = self._items
        items[request_id] = (part, rows, time.time()) if self.keep_inputs else (part, None, 0.0)
        if len(items) > self.capacity:
            items.popitem(last=False)

    def put_back(self, request_id: str, entry: Remembered) -> None:
        """Keep ``entry`` again (its feedback was refused, so it may come once more)."""
        self._items[request_id] = (entry.part, entry.rows, entry.predicted_at)

    def take(self, request_id: str) -> Remembered | None:
        """The predictions of ``request_id``, once: a second feedback for it finds nothing."""
        item = self._items.pop(request_id, None)
        return None if item is None else Remembered(*item)

    def __len__(self) -> int:
        return len(self._items)


def slice_values(part: Slice[BatchResult]) -> tuple[list[Any], list[float]]:
    """A request's predicted values and exported scores as plain lists."""
    r = part.result
    return r.values[part.start : part.stop].tolist(), r.scores[part.start : part.stop].tolist()

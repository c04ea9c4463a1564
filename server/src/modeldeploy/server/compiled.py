"""Common model shapes called without scikit-learn's per-call input checks.

Measured on the example (a ``StandardScaler`` and 150 depth-3 trees, 16 rows): one
``predict_proba`` costs about 340 us, of which the trees take about 40 us; the rest is
scikit-learn checking, in Python and holding the GIL, an input the server has already
validated (dtype look-ups, DataFrame detection, feature-count checks, three times per call).
That is also why running the call in a worker thread buys nothing here: the GIL is held for
nearly all of it. A ``ColumnTransformer`` on a DataFrame is worse: about 7 ms for 16 rows,
nearly all of it pandas indexing and the same checks.

For a ``Pipeline`` of an optional ``ColumnTransformer`` (``OneHotEncoder`` and
``StandardScaler`` on named columns, dense output), ``StandardScaler`` steps, and a binary or
multiclass ``GradientBoostingClassifier`` with a constant initial estimator (the default),
this module does the same arithmetic scikit-learn does, in the same order: one-hot columns
of zeros and ones in the encoder's category order, subtract the mean and divide by the scale
in float64, stack the blocks in the transformer's order, cast to float32, start from the
initial raw prediction, add the trees with scikit-learn's own ``predict_stages``, and turn
raw scores into probabilities with the model's own loss. The result is checked bit for bit
against the model's own ``predict_proba`` when the model is loaded; any other shape, or any
difference, keeps the plain call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from modeldeploy.server.arrays import FloatArray

log = logging.getLogger(__name__)

Proba = Callable[[FloatArray], FloatArray]


class CompiledBoosting:
    """``predict_proba`` of a scaler-and-boosting pipeline on a validated float64 array."""

    def __init__(self, model: Any) -> None:
        from sklearn.dummy import DummyClassifier
        from sklearn.ensemble import GradientBoostingClassifier
        from sklearn.ensemble._gradient_boosting import predict_stages
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        steps = [s for _, s in model.steps] if type(model) is Pipeline else [model]
        self._columns: CompiledColumns | None = None
        if len(steps) > 1 and type(steps[0]).__name__ == "ColumnTransformer":
            self._columns = CompiledColumns(steps[0])
            steps = steps[1:]
        *scalers, booster = steps
        if type(booster) is not GradientBoostingClassifier:
            raise TypeError("not a GradientBoostingClassifier")
        self._shifts: list[tuple[FloatArray | None, FloatArray | None]] = []
        for scaler in scalers:
            if type(scaler) is not StandardScaler:
                raise TypeError(f"{type(scaler).__name__} is not a StandardScaler")
            mean = scaler.mean_ if scaler.with_mean else None
            scale = scaler.scale_ if scaler.with_std else None
            self._shifts.append(
                (
                    None if mean is None else np.asarray(mean, dtype=np.float64),
                    None if scale is None else np.asarray(scale, dtype=np.float64),
                )
            )
        init = booster.init_
        constant_init = init == "zero" or (
            type(init) is DummyClassifier and init.strategy == "prior"
        )
        if not constant_init:
            raise TypeError("the initial estimator is not constant")
        self.n_features = int(booster.n_features_in_)
        probe = np.zeros((1, self.n_features), dtype=np.float32)
        self._init = np.asarray(booster._raw_predict_init(probe), dtype=np.float64)[0]
        self._estimators = booster.estimators_
        self._rate = float(booster.learning_rate)
        self._loss = booster._loss
        self._stages = predict_stages
        self._binary = booster.n_trees_per_iteration_ == 1

    def predict_proba(self, x: Any) -> FloatArray:
        if self._columns is not None:
            x = self._columns.transform(x)
        for mean, scale in self._shifts:
            x = x - mean if mean is not None else x.copy()
            if scale is not None:
                x /= scale
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        raw = np.empty((len(x32), len(self._init)), dtype=np.float64)
        raw[:] = self._init
        self._stages(self._estimators, x32, self._rate, raw)
        result: FloatArray = self._loss.predict_proba(raw.ravel() if self._binary else raw)
        return result


class Unknown(Exception):
    """A category the one-hot encoder would refuse: the model's own call must say so."""


class CompiledColumns:
    """A fitted ``ColumnTransformer`` of ``OneHotEncoder`` and ``StandardScaler`` steps on
    named DataFrame columns with dense output, as one float64 matrix built with numpy (a
    sparse one-hot block is made dense by the transformer anyway: the same zeros and ones)."""

    def __init__(self, transformer: Any) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if type(transformer) is not ColumnTransformer or transformer.sparse_output_:
            raise TypeError("not a ColumnTransformer with dense output")
        self._parts: list[tuple[str, list[str], Any]] = []
        for name, step, columns in transformer.transformers_:
            if isinstance(step, str) and step == "drop":
                continue
            if not isinstance(columns, list) or not all(isinstance(n, str) for n in columns):
                raise TypeError(f"{name}: columns are not given by name")
            if type(step) is OneHotEncoder:
                if (
                    step.drop is not None
                    or step.handle_unknown not in ("ignore", "error")
                    or getattr(step, "_infrequent_enabled", True)
                    or step.dtype is not np.float64
                ):
                    raise TypeError(f"{name}: a one-hot encoder this module does not mirror")
                if any(v != v or v is None for c in step.categories_ for v in c.tolist()):
                    raise TypeError(f"{name}: a missing value is one of the categories")
                lookups = [{v: i for i, v in enumerate(c.tolist())} for c in step.categories_]
                ignore = step.handle_unknown == "ignore"
                self._parts.append(("onehot", columns, (lookups, ignore)))
            elif type(step) is StandardScaler:
                mean = step.mean_ if step.with_mean else None
                scale = step.scale_ if step.with_std else None
                self._parts.append(("scale", columns, (mean, scale)))
            else:
                raise TypeError(f"{name}: {type(step).__name__} is not mirrored")

    def transform(self, frame: Any) -> FloatArray:
        n = len(frame)
        blocks: list[FloatArray] = []
        for kind, columns, params in self._parts:
            if kind == "onehot":
                lookups, ignore = params
                width = sum(len(lookup) for lookup in lookups)
                out = np.zeros((n, width), dtype=np.float64)
                offset = 0
                for name, lookup in zip(columns, lookups, strict=True):
                    for i, value in enumerate(frame[name].to_numpy(dtype=object).tolist()):
                        code = lookup.get(value)
                        if code is not None:
                            out[i, offset + code] = 1.0
                        elif not ignore:
                            raise Unknown(name)
                    offset += len(lookup)
                blocks.append(out)
            else:
                mean, scale = params
                x = np.column_stack([frame[name].to_numpy(dtype=np.float64) for name in columns])
                if mean is not None:
                    x -= mean
                if scale is not None:
                    x /= scale
                blocks.append(x)
        return np.hstack(blocks)


def compiled_proba(model: Any, sample: Any) -> Proba | None:
    """A faster ``predict_proba`` for ``model`` when its shape allows one and it agrees with
    the model's own bit for bit on ``sample`` (valid inputs: an array, or a DataFrame for a
    model fitted on one); else ``None``. A category the model's one-hot encoder would refuse
    is left to the model's own call, so its error is the model's own."""
    try:
        compiled = CompiledBoosting(model)
    except (TypeError, AttributeError, ImportError, ValueError) as exc:
        log.debug("model call not compiled: %s", exc)
        return None
    import sklearn

    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for rows in (1, 2, 7, len(sample)):
            block = sample[:rows]
            if isinstance(block, np.ndarray):
                block = np.ascontiguousarray(block, dtype=np.float64)
            try:
                ours = compiled.predict_proba(block)
            except Unknown:
                continue
            theirs = model.predict_proba(block)
            if ours.shape != theirs.shape or not np.array_equal(ours, theirs):
                log.warning("compiled model call disagrees with the model's own: not used")
                return None

    def predict_proba(x: Any) -> FloatArray:
        try:
            return compiled.predict_proba(x)
        except Unknown:
            with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
                result: FloatArray = model.predict_proba(x)
            return result

    return predict_proba

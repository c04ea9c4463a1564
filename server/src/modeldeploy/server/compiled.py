"""The example's model shape called without scikit-learn's per-call input checks.

Measured on the example (a ``StandardScaler`` and 150 depth-3 trees, 16 rows): one
``predict_proba`` costs about 340 us, of which the trees take about 40 us; the rest is
scikit-learn checking, in Python and holding the GIL, an input the server has already
validated (dtype look-ups, DataFrame detection, feature-count checks, three times per call).
That is also why running the call in a worker thread buys nothing here: the GIL is held for
nearly all of it.

For a ``Pipeline`` of ``StandardScaler`` steps before a binary or multiclass
``GradientBoostingClassifier`` with a constant initial estimator (the default), this module
does the same arithmetic scikit-learn does, in the same order: subtract the mean and divide
by the scale in float64, cast to float32, start from the initial raw prediction, add the
trees with scikit-learn's own ``predict_stages``, and turn raw scores into probabilities
with the model's own loss. The result is checked bit for bit against the model's own
``predict_proba`` when the model is loaded; any other shape, or any difference, keeps the
plain call.
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

    def predict_proba(self, x: FloatArray) -> FloatArray:
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


def compiled_proba(model: Any, sample: FloatArray) -> Proba | None:
    """A faster ``predict_proba`` for ``model`` when its shape allows one and it agrees with
    the model's own bit for bit on ``sample`` (rows of valid inputs); else ``None``."""
    try:
        compiled = CompiledBoosting(model)
    except (TypeError, AttributeError, ImportError, ValueError) as exc:
        log.debug("model call not compiled: %s", exc)
        return None
    import sklearn

    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for rows in (1, 2, 7, len(sample)):
            block = np.ascontiguousarray(sample[:rows], dtype=np.float64)
            ours, theirs = compiled.predict_proba(block), model.predict_proba(block)
            if ours.shape != theirs.shape or not np.array_equal(ours, theirs):
                log.warning("compiled model call disagrees with the model's own: not used")
                return None
    return compiled.predict_proba

"""Metrics of a model on labelled data: overall and per subgroup."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modeldeploy.server.card import CLASSIFICATION, Output


def metrics(model: Any, model_input: Any, y: Any, output: Output) -> dict[str, float]:
    """Classification: accuracy and log loss, plus ROC AUC and Brier score of P(positive)
    (binary) or macro F1 (multiclass); regression: MAE, RMSE and R^2."""
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        f1_score,
        log_loss,
        mean_absolute_error,
        mean_squared_error,
        r2_score,
        roc_auc_score,
    )

    truth = np.asarray(y)
    if output.kind != CLASSIFICATION:
        predicted = np.asarray(model.predict(model_input), dtype=np.float64)
        truth = truth.astype(np.float64)
        return {
            "mae": float(mean_absolute_error(truth, predicted)),
            "rmse": float(math.sqrt(mean_squared_error(truth, predicted))),
            "r2": float(r2_score(truth, predicted)) if len(truth) > 1 else math.nan,
        }
    classes = list(output.classes)
    proba = np.asarray(model.predict_proba(model_input), dtype=np.float64)
    predicted = np.asarray(model.classes_)[proba.argmax(axis=1)]
    out = {
        "accuracy": float(accuracy_score(truth, predicted)),
        "log_loss": float(log_loss(truth, np.clip(proba, 1e-15, 1.0), labels=classes)),
    }
    if len(classes) > 2:
        out["f1_macro"] = float(f1_score(truth, predicted, labels=classes, average="macro"))
    else:
        positive = (truth == output.positive_class).astype(np.int64)
        score = proba[:, classes.index(output.positive_class)]
        both = 0 < positive.sum() < len(positive)
        out["roc_auc"] = float(roc_auc_score(positive, score)) if both else math.nan
        out["brier"] = float(brier_score_loss(positive, score))
    return out


def by_subgroup(
    model: Any, model_input: Any, y: Any, output: Output, groups: Any
) -> dict[str, dict[str, float]]:
    """``{group value: {rows, metrics...}}`` for each value of ``groups``."""
    values = np.asarray(groups, dtype=object)
    truth = np.asarray(y)
    out: dict[str, dict[str, float]] = {}
    for value in sorted({str(v) for v in values}):
        mask = np.array([str(v) == value for v in values])
        part = model_input[mask] if not hasattr(model_input, "iloc") else model_input.loc[mask]
        found = metrics(model, part, truth[mask], output)
        out[value] = {"rows": float(mask.sum()), **found}
    return out


def finite(values: dict[str, float]) -> dict[str, float | None]:
    """Metrics JSON can hold (NaN as null)."""
    return {k: (None if math.isnan(v) else v) for k, v in values.items()}

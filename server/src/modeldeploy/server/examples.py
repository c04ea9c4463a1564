"""The example model: an SRE incident predictor trained on synthetic service telemetry.

One generator makes training data, reference data, evaluation data and live request
traffic, so the demo, the tests and a traffic generator all speak of the same world:

- ``normal`` traffic is what the ``good`` model was trained on;
- ``shifted`` traffic has busier, slower, more error-prone services (input drift);
- the ``diverging`` variant learned a different relation (far more incidents) from the
  same inputs, so its predictions on normal traffic are systematically higher;
- the ``drifted`` variant was trained on shifted inputs, so normal live traffic looks
  drifted against its reference profile.

Everything is deterministic in its seed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.server.arrays import FloatArray, IntArray, ValueArray
from modeldeploy.server.card import (
    CATEGORICAL,
    CLASSIFICATION,
    INTEGER,
    NUMERIC,
    DirectionalCheck,
    FeatureSpec,
    ModelCard,
    Output,
)

MODEL_NAME = "incident-predictor"
TARGET = "incident"
VARIANTS = ("good", "drifted", "diverging")
N_ESTIMATORS = 150

FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("request_rate", NUMERIC, "requests per second served by the service", minimum=0.0),
    FeatureSpec(
        "error_pct",
        NUMERIC,
        "share of requests answered with an error, in percent",
        minimum=0.0,
        maximum=100.0,
    ),
    FeatureSpec("p99_latency_ms", NUMERIC, "99th percentile latency in milliseconds", minimum=0.0),
    FeatureSpec(
        "deploy_hour", INTEGER, "hour of day (UTC) of the last deploy", minimum=0.0, maximum=23.0
    ),
    FeatureSpec(
        "is_weekend", CATEGORICAL, "1 when the last deploy was on a weekend", categories=(0.0, 1.0)
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)

# How many logits the diverging variant's learned relation is shifted by.
_DIVERGING_SHIFT = 2.5
_HOUR_WEIGHTS = np.array(
    [1, 1, 1, 1, 1, 1, 2, 3, 6, 9, 10, 10, 9, 10, 10, 9, 8, 6, 4, 3, 2, 2, 1, 1], dtype=np.float64
)


def generate_traffic(rows: int, seed: int = 0, shifted: bool = False) -> FloatArray:
    """``rows`` feature vectors, columns in ``FEATURE_NAMES`` order.

    Shifted traffic: 2.5x the request rate, 3x the error level, 1.8x the latency, deploys
    spread over the whole day and half of them on weekends.
    """
    rng = np.random.default_rng(seed)
    rate = rng.lognormal(np.log(400.0), 0.5, rows) * (2.5 if shifted else 1.0)
    errors = np.clip(rng.gamma(1.5, 0.6, rows) * (3.0 if shifted else 1.0), 0.0, 100.0)
    latency = rng.lognormal(np.log(180.0), 0.35, rows) * (1.8 if shifted else 1.0)
    hour_p = np.ones(24) / 24 if shifted else _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
    hour = rng.choice(24, size=rows, p=hour_p).astype(np.float64)
    weekend = (rng.random(rows) < (0.5 if shifted else 2.0 / 7.0)).astype(np.float64)
    return np.column_stack(
        [np.round(rate, 2), np.round(errors, 3), np.round(latency, 1), hour, weekend]
    )


def incident_logit(x: FloatArray, shift: float = 0.0) -> FloatArray:
    """The true log-odds of an incident: errors, latency, load, off-hours and weekend deploys."""
    rate, errors, latency, hour, weekend = x.T
    off_hours = ((hour >= 18) | (hour < 6)).astype(np.float64)
    logit: FloatArray = (
        -3.2
        + 1.1 * errors
        + 0.012 * (latency - 180.0)
        + 0.6 * np.log(np.maximum(rate, 1.0) / 400.0)
        + 0.9 * off_hours
        + 0.5 * weekend
        + shift
    )
    return logit


def incident_labels(x: FloatArray, seed: int = 0, shift: float = 0.0) -> IntArray:
    """Incident outcomes (0/1) drawn from the true probability."""
    rng = np.random.default_rng(seed)
    p = 1.0 / (1.0 + np.exp(-incident_logit(x, shift)))
    return (rng.random(len(x)) < p).astype(np.int64)


def as_records(x: FloatArray) -> list[dict[str, float | int]]:
    """Rows as JSON-ready records (integers stay integers) for ``POST /predict``."""
    out: list[dict[str, float | int]] = []
    for row in x.tolist():
        out.append(
            {
                name: (int(v) if spec.kind != NUMERIC else float(v))
                for name, spec, v in zip(FEATURE_NAMES, FEATURES, row, strict=True)
            }
        )
    return out


def write_csv(path: Path, x: FloatArray, y: ValueArray | None = None) -> Path:
    """Features (and the target column when given) as CSV, the format ``modeldeploy gate`` reads."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(FEATURE_NAMES) + ([TARGET] if y is not None else []))
        for i, record in enumerate(as_records(x)):
            writer.writerow(list(record.values()) + ([int(y[i])] if y is not None else []))
    return path


def build_pipeline(seed: int) -> Any:
    """A scaler and gradient boosting with 150 trees, the shape every example bundle has."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "model",
                GradientBoostingClassifier(
                    n_estimators=N_ESTIMATORS, max_depth=3, learning_rate=0.1, random_state=seed
                ),
            ),
        ]
    )


def evaluate(model: Any, x: FloatArray, y: ValueArray) -> dict[str, float]:
    """Accuracy, ROC AUC, log loss and Brier score of a classifier on labelled data."""
    from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

    proba = model.predict_proba(x)[:, 1]
    predicted = (proba >= 0.5).astype(np.int64)
    both = len(set(y.tolist())) > 1
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "roc_auc": float(roc_auc_score(y, proba)) if both else float("nan"),
        "log_loss": float(log_loss(y, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y, proba)),
        "positive_rate": float(y.mean()),
    }


def build_example(
    out: Path,
    version: str,
    variant: str = "good",
    seed: int = 0,
    training_rows: int = 4000,
    reference_rows: int = 2000,
) -> ModelCard:
    """Train the ``variant`` of the incident predictor and write its bundle to ``out``."""
    from modeldeploy.server.bundle import write_bundle

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    shifted = variant == "drifted"
    shift = _DIVERGING_SHIFT if variant == "diverging" else 0.0
    x_train = generate_traffic(training_rows, seed=seed * 10 + 1, shifted=shifted)
    y_train = incident_labels(x_train, seed=seed * 10 + 2, shift=shift)
    x_ref = generate_traffic(reference_rows, seed=seed * 10 + 3, shifted=shifted)
    y_ref = incident_labels(x_ref, seed=seed * 10 + 4, shift=shift)
    model = build_pipeline(seed).fit(x_train, y_train)
    caveats = [
        "Trained on synthetic telemetry; a demonstration model, not an operational one.",
        "Probabilities are calibrated only on the training distribution; check /drift before "
        "trusting them.",
    ]
    if variant == "drifted":
        caveats.append("Trained on shifted (busier, slower) traffic.")
    if variant == "diverging":
        caveats.append("Trained on labels that overstate incidents; predicts far more of them.")
    return write_bundle(
        Path(out),
        model,
        name=MODEL_NAME,
        version=version,
        features=FEATURES,
        output=Output(kind=CLASSIFICATION, target=TARGET, classes=(0, 1), positive_class=1),
        training_x=x_train,
        training_y=y_train,
        reference_x=x_ref,
        metrics=evaluate(model, x_ref, y_ref),
        intended_use=(
            "Rank services by the risk of an incident in the next hour from their "
            "current telemetry."
        ),
        out_of_scope=[
            "Paging decisions without a human in the loop.",
            "Services with fewer than 1 request/s.",
        ],
        caveats=caveats,
        directional_checks=[
            DirectionalCheck("error_pct", "increasing"),
            DirectionalCheck("p99_latency_ms", "increasing"),
        ],
    )


def example_eval_data(
    rows: int, seed: int = 0, shifted: bool = False
) -> tuple[FloatArray, IntArray]:
    """Labelled data from the true relation, for the gate and for feedback."""
    x = generate_traffic(rows, seed=seed, shifted=shifted)
    return x, incident_labels(x, seed=seed + 7919)


def records_for(rows: int, seed: int = 0, shifted: bool = False) -> list[dict[str, float | int]]:
    """Request records from the same generator (normal or shifted), for clients."""
    return as_records(generate_traffic(rows, seed=seed, shifted=shifted))


def batches(records: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    """Consecutive slices of ``records`` of at most ``size``."""
    for start in range(0, len(records), size):
        yield records[start : start + size]

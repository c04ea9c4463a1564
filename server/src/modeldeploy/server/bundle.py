"""The model bundle: write one from a fitted pipeline, load one only if its digest matches.

A bundle is a folder (or a ``.tar.gz`` of one) holding ``model.joblib``, the whole fitted
scikit-learn ``Pipeline``, and ``model-card.json``. Unpickling runs arbitrary code and an
edited card could blind drift detection, so the pinned digest (the ModelDeployment's
``sha256``, the server's ``--sha256``) is the *bundle digest*, which covers both files:
``sha256("modeldeploy-bundle/v1\n" "model.joblib <sha256>\n" "model-card.json <sha256>\n")``.
``load_bundle`` computes it on the very bytes it then parses and unpickles, before
``joblib`` ever sees them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.server import serialization
from modeldeploy.server.arrays import FloatArray, ValueArray
from modeldeploy.server.bundlefiles import BundleError as BundleError
from modeldeploy.server.bundlefiles import BundleFiles as BundleFiles
from modeldeploy.server.bundlefiles import pack_bundle as pack_bundle
from modeldeploy.server.bundlefiles import read_bundle_files as read_bundle_files
from modeldeploy.server.card import (
    CLASSIFICATION,
    DirectionalCheck,
    FeatureSpec,
    ModelCard,
    Output,
    PredictionReference,
)
from modeldeploy.server.contract import CARD_FILE, MODEL_FILE, MODEL_FILES
from modeldeploy.server.digest import bundle_digest as bundle_digest
from modeldeploy.server.digest import file_sha256 as file_sha256
from modeldeploy.server.digest import sha256_bytes as sha256_bytes

log = logging.getLogger(__name__)

DEFAULT_BINS = 10
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class IntegrityError(BundleError):
    """The model file's digest is not the pinned one: it was never unpickled."""


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: the verified model and its card."""

    model: Any
    card: ModelCard
    source: Path
    sha256: str  # the bundle digest (model and card), the one that was pinned
    model_sha256: str = ""


def bundle_sha256(path: Path) -> str:
    """The bundle digest of a bundle folder or archive (what to pin)."""
    files = read_bundle_files(Path(path))
    return bundle_digest(files.model, files.card, files.model_file)


def normalise_sha256(value: str) -> str:
    """Accept ``HEX`` or ``sha256:HEX`` in any case; refuse anything that is not 64 hex digits."""
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    if not _SHA256.match(text):
        raise BundleError(f"not a sha256 digest (64 hex digits expected): {value!r}")
    return text


# --- writing ---------------------------------------------------------------------------


def fingerprint(features: Any, labels: Any) -> str:
    """A digest of the training data (shape, dtype and bytes), so lineage can be checked later.

    DataFrames are hashed by their column names, dtypes and pandas' row hashes.
    """
    digest = hashlib.sha256()
    if hasattr(features, "columns"):
        import pandas as pd

        digest.update(repr([(str(k), str(v)) for k, v in features.dtypes.items()]).encode())
        digest.update(pd.util.hash_pandas_object(features, index=False).to_numpy().tobytes())
        digest.update(pd.util.hash_pandas_object(pd.Series(labels), index=False).to_numpy())
        return "sha256:" + digest.hexdigest()
    for arr in (np.ascontiguousarray(features, dtype=np.float64), np.ascontiguousarray(labels)):
        digest.update(repr((arr.shape, arr.dtype.str)).encode())
        digest.update(arr.tobytes())
    return "sha256:" + digest.hexdigest()


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters the card can hold: plain scalars, everything else by its repr."""
    safe: dict[str, Any] = {}
    for key, value in sorted(params.items()):
        if value is None or isinstance(value, (bool, int, float, str)):
            safe[key] = value
        else:
            safe[key] = repr(value)
    return safe


def positive_scores(model: Any, rows: Any, output: Output) -> FloatArray:
    """The numeric value the server exports per row: ``P(positive)`` or the regression value."""
    if output.kind == CLASSIFICATION:
        proba = model.predict_proba(rows)
        index = list(model.classes_).index(output.positive_class)
        return np.asarray(proba[:, index], dtype=np.float64)
    return np.asarray(model.predict(rows), dtype=np.float64)


def write_bundle(
    out: Path,
    pipeline: Any,
    *,
    name: str,
    version: str,
    features: Sequence[FeatureSpec],
    output: Output,
    training_x: Any,
    training_y: ValueArray,
    reference_x: Any,
    metrics: dict[str, float],
    intended_use: str,
    out_of_scope: Sequence[str] = (),
    caveats: Sequence[str] = (),
    directional_checks: Sequence[DirectionalCheck] = (),
    bins: int = DEFAULT_BINS,
    created: datetime | None = None,
    input_format: str = "array",
    training_data: dict[str, Any] | None = None,
    ethical_considerations: Sequence[str] = (),
    evaluation: dict[str, Any] | None = None,
    model_format: str = serialization.DEFAULT_FORMAT,
) -> ModelCard:
    """Write the model file (``model.joblib``, or ``model.skops`` with ``model_format``) and
    ``model-card.json`` into the folder ``out``; return the card.

    ``reference_x`` is the data drift is measured against (usually a held-out part of the
    training distribution): a float array in the features' order, or a DataFrame holding
    the feature columns. Its profile and the model's predictions on it, computed on exactly
    the input the server builds, go into the card. ``training_data`` adds entries (time
    range, source) to the card's training data; ``modeldeploy.server.bundling`` fills all
    of these from a user's model and data.
    """
    from modeldeploy.server.bundling.profile import profile_features
    from modeldeploy.server.frame import Encoder

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in MODEL_FILES:  # a bundle holds one model file: never an old one beside it
        (out / stale).unlink(missing_ok=True)
    model_path, trusted_types = serialization.dump(pipeline, out, model_format)
    digest = file_sha256(model_path)

    encoder = Encoder(features, input_format)
    if hasattr(reference_x, "columns"):
        reference = encoder.from_frame(reference_x)
    else:
        reference = encoder.build([np.asarray(reference_x, dtype=np.float64)])
    scores = positive_scores(pipeline, reference.model_input, output)
    class_fractions: dict[str, float] = {}
    if output.kind == CLASSIFICATION:
        predicted = np.asarray(pipeline.predict(reference.model_input))
        for cls in output.classes:
            class_fractions[str(cls)] = float(np.mean(predicted == cls))
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    card = ModelCard(
        name=name,
        version=version,
        created=(created or datetime.now(UTC)).isoformat(timespec="seconds"),
        algorithm=f"{type(final).__module__}.{type(final).__name__}",
        hyperparameters=_json_safe(final.get_params(deep=False)),
        training_data={
            "fingerprint": fingerprint(training_x, training_y),
            "rows": int(len(training_x)),
            "target": output.target,
            **(training_data or {}),
        },
        metrics={k: float(v) for k, v in metrics.items()},
        intended_use=intended_use,
        out_of_scope=tuple(out_of_scope),
        caveats=tuple(caveats),
        features=tuple(features),
        output=output,
        reference_size=int(reference.rows),
        reference=profile_features(reference.codes, features, bins),
        prediction_reference=PredictionReference(
            mean=float(scores.mean()), std=float(scores.std()), class_fractions=class_fractions
        ),
        directional_checks=tuple(directional_checks),
        sha256=digest,
        input_format=input_format,
        ethical_considerations=tuple(ethical_considerations),
        evaluation=dict(evaluation or {}),
        serialization=model_format,
        trusted_types=trusted_types,
    )
    card.check()
    (out / CARD_FILE).write_text(card.to_json())
    log.info(
        "wrote bundle %s version %s to %s (bundle sha256 %s)",
        name,
        version,
        out,
        bundle_sha256(out),
    )
    return card


# --- reading ---------------------------------------------------------------------------


def read_card(path: Path) -> ModelCard:
    """Only the card of a bundle; never touches the pickle's contents."""
    return ModelCard.from_json(read_bundle_files(path).card.decode("utf-8"))


def verify_bytes(
    model_bytes: bytes, card_bytes: bytes, pinned: str, source: Path, model_file: str = MODEL_FILE
) -> str:
    """Raise ``IntegrityError`` unless the bundle digest is ``pinned``; return the digest."""
    expected = normalise_sha256(pinned)
    actual = bundle_digest(model_bytes, card_bytes, model_file)
    if not hmac.compare_digest(actual, expected):
        hint = ""
        if hmac.compare_digest(sha256_bytes(model_bytes), expected):
            hint = (
                f" (the pin is the sha256 of {MODEL_FILE} alone; the pin now covers the card "
                "too: pin the digest `modeldeploy bundle` printed, or `modeldeploy digest "
                "BUNDLE` of the bundle you built)"
            )
        raise IntegrityError(
            f"{source}: bundle sha256 (model and card) is {actual}, pinned {expected}: "
            f"refusing to load it{hint}"
        )
    return actual


def load_bundle(path: Path, sha256: str) -> Bundle:
    """Load a bundle whose bundle digest (model and card) is ``sha256``.

    The digest is checked on the very bytes that are then unpickled, so a file swapped
    between check and load cannot slip through.
    """
    path = Path(path)
    model_file, model_bytes, card_bytes = read_bundle_files(path)
    digest = verify_bytes(model_bytes, card_bytes, sha256, path, model_file)
    card = ModelCard.from_json(card_bytes.decode("utf-8"))
    if serialization.file_for(card.serialization) != model_file:
        raise BundleError(
            f"{path}: the card says the model is stored as {card.serialization}, the bundle "
            f"holds {model_file}"
        )
    model_digest = sha256_bytes(model_bytes)
    if card.sha256 and card.sha256 != model_digest:
        raise IntegrityError(
            f"{path}: the card names sha256 {card.sha256}, the model file is {model_digest}"
        )
    try:
        model = serialization.load(model_bytes, card.serialization, card.trusted_types)
    except serialization.SerializationError as exc:
        raise BundleError(f"{path}: {exc}") from None
    except Exception as exc:  # an unreadable pickle can raise anything
        raise BundleError(
            f"{path}: {model_file} could not be loaded: {type(exc).__name__}: {exc}"
        ) from None
    names = card.feature_names
    n_in = getattr(model, "n_features_in_", len(names))
    if n_in != len(names):
        raise BundleError(f"{path}: the model takes {n_in} features, the card lists {len(names)}")
    trained = getattr(model, "feature_names_in_", None)
    if card.input_format == "dataframe" and (
        trained is None or [str(n) for n in trained] != list(names)
    ):
        raise BundleError(
            f"{path}: the card's features {list(names)} are not the columns the model was "
            f"fitted on ({None if trained is None else list(trained)})"
        )
    if card.output.kind == CLASSIFICATION:
        classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])]
        if list(classes) != list(card.output.classes):
            raise BundleError(
                f"{path}: the model's classes {classes} differ from the card's "
                f"{list(card.output.classes)}"
            )
    log.info(
        "loaded model %s version %s from %s (sha256 %s verified)",
        card.name,
        card.version,
        path,
        digest,
    )
    return Bundle(model=model, card=card, source=path, sha256=digest, model_sha256=model_digest)

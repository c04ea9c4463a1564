"""``bundle_model``: a user's fitted model plus its reference data to a pinned bundle.

The one call behind ``modeldeploy bundle``, usable from a notebook::

    card, digest = bundle_model(pipeline, frame, "churned", name="churn", version="1",
                                out="churn-1.tar.gz")
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.server.bundle import bundle_sha256, pack_bundle, write_bundle
from modeldeploy.server.bundling import evaluate
from modeldeploy.server.bundling.cardfile import CardText, parse, read_card_file
from modeldeploy.server.bundling.schema import (
    SchemaError,
    as_frame,
    feature_columns,
    infer_features,
    plain,
)
from modeldeploy.server.card import (
    CATEGORICAL,
    CLASSIFICATION,
    REGRESSION,
    FeatureSpec,
    ModelCard,
    Output,
)
from modeldeploy.server.frame import Encoder
from modeldeploy.server.serialization import DEFAULT_FORMAT

HELD_OUT_SHARE = 0.25


def coerce_labels(values: Any, output: Output, where: str = "target") -> Any:
    """Labels as the model's classes are typed (strings or numbers); regression: floats."""
    arr = np.asarray(values, dtype=object)
    if output.kind != CLASSIFICATION:
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError):
            raise SchemaError(f"{where}: a regression target must be numbers") from None
    by_text = {str(c): c for c in output.classes}
    out = []
    for v in arr.tolist():
        key = str(v)
        if key not in by_text and isinstance(v, float) and v.is_integer():
            key = str(int(v))
        if key not in by_text:
            classes = ", ".join(map(str, output.classes))
            raise SchemaError(f"{where}: {v!r} is not a class of the model ({classes})")
        out.append(by_text[key])
    return np.array(out, dtype=object if isinstance(out[0], str) else None)


def output_of(model: Any, target: str, positive_class: Any = None) -> Output:
    """Classification (classes from ``classes_``) or regression, from the estimator."""
    from sklearn.base import is_classifier

    if not is_classifier(model):
        if positive_class is not None:
            raise SchemaError("--positive-class is for classifiers; this model is a regressor")
        return Output(kind=REGRESSION, target=target)
    classes = tuple(plain(c) for c in model.classes_)
    if positive_class is None:
        positive = classes[-1]
    else:
        matches = [c for c in classes if str(c) == str(positive_class)]
        if not matches:
            raise SchemaError(
                f"positive class {positive_class!r} is not a class ({', '.join(map(str, classes))})"
            )
        positive = matches[0]
    return Output(kind=CLASSIFICATION, target=target, classes=classes, positive_class=positive)


def _with_author_settings(specs: Sequence[FeatureSpec], text: CardText) -> list[FeatureSpec]:
    out = []
    names = {s.name for s in specs}
    for fname in text.features:
        if fname not in names:
            raise SchemaError(f"CARD.yaml: features.{fname} is not a feature of the model")
    for spec in specs:
        extra = text.features.get(spec.name, {})
        fields = dict(spec.__dict__)
        for key in ("description", "minimum", "maximum"):
            if key in extra:
                fields[key] = extra[key] if key == "description" else float(extra[key])
        out.append(FeatureSpec(**fields))
    return out


def _with_known_categories(
    specs: Sequence[FeatureSpec], known: Sequence[FeatureSpec]
) -> list[FeatureSpec]:
    by_name = {k.name: k for k in known}
    out = []
    for spec in specs:
        old = by_name.get(spec.name)
        if old is not None and spec.kind == old.kind and spec.kind == CATEGORICAL:
            merged = tuple(sorted({*spec.categories, *old.categories}))
            spec = replace(
                spec, categories=merged, allow_unseen=spec.allow_unseen or old.allow_unseen
            )
        out.append(spec)
    return out


def bundle_model(
    model: Any,
    data: Any,
    target: str | Any,
    *,
    name: str,
    version: str,
    out: Path | str,
    test: Any = None,
    positive_class: Any = None,
    card: CardText | dict[str, Any] | Path | str | None = None,
    subgroup: str | None = None,
    time_column: str | None = None,
    feature_names: Sequence[str] | None = None,
    seed: int = 0,
    model_format: str = DEFAULT_FORMAT,
    lineage: dict[str, Any] | None = None,
    known_features: Sequence[FeatureSpec] = (),
) -> tuple[ModelCard, str]:
    """Write the bundle of a fitted ``model`` to ``out`` (a folder, or ``.tar.gz``).

    ``data`` is the reference data (a DataFrame, or an array with ``feature_names``), with
    the target as its column ``target`` or given as an array. Metrics are measured on
    ``test`` (same columns) or, without it, on a held-out 25% of ``data`` (the card says
    which). Returns the card and the bundle digest to pin.

    ``lineage`` adds entries to the card's training data (a retrained version's data window,
    trainer and the version it replaces). ``known_features`` are the features of the version
    this one replaces: a category they accept stays accepted even when the new data lacks it,
    so a retrained model never starts refusing requests its predecessor served.
    """
    text = (
        card
        if isinstance(card, CardText)
        else (
            parse(card, "card")
            if isinstance(card, dict) or card is None
            else read_card_file(Path(card))
        )
    )
    frame = as_frame(data, feature_names)
    if isinstance(target, str):
        if target not in frame.columns:
            raise SchemaError(f"the data has no target column {target!r}")
        target_name, y_raw = target, frame[target].to_numpy()
    else:
        target_name, y_raw = "target", np.asarray(target)
        if len(y_raw) != len(frame):
            raise SchemaError(f"{len(y_raw)} targets for {len(frame)} rows")
    for col, what in ((subgroup, "subgroup"), (time_column, "time")):
        if col is not None and col not in frame.columns:
            raise SchemaError(f"the data has no {what} column {col!r}")
    exclude = [target_name, *(c for c in (subgroup, time_column) if c)]
    names, input_format = feature_columns(model, frame, exclude)
    specs = infer_features(frame, names, text.allow_unseen, dataframe=input_format == "dataframe")
    specs = tuple(_with_known_categories(_with_author_settings(specs, text), known_features))
    output = output_of(model, target_name, positive_class)
    y = coerce_labels(y_raw, output)

    encoder = Encoder(specs, input_format)
    if test is not None:
        test_frame = as_frame(test, feature_names)
        if not isinstance(target, str):
            raise SchemaError("with an array target, give no test data (or a target column)")
        if target_name not in test_frame.columns:
            raise SchemaError(f"the test data has no target column {target_name!r}")
        eval_frame, eval_y = test_frame, coerce_labels(test_frame[target_name], output, "test")
        described = f"test data ({len(test_frame)} rows)"
    else:
        rng = np.random.default_rng(seed)
        held = np.sort(rng.permutation(len(frame))[: max(1, int(len(frame) * HELD_OUT_SHARE))])
        eval_frame, eval_y = frame.iloc[held], y[held]
        described = (
            f"held-out split: {len(held)} of the {len(frame)} reference rows "
            f"({HELD_OUT_SHARE:.0%}, seed {seed}); if the model was trained on these rows "
            "the metrics are optimistic"
        )
    eval_input = encoder.from_frame(eval_frame).model_input
    found = evaluate.metrics(model, eval_input, eval_y, output)
    evaluation: dict[str, Any] = {"data": described, "rows": int(len(eval_frame))}
    if subgroup is not None:
        if subgroup not in eval_frame.columns:
            raise SchemaError(f"the test data has no subgroup column {subgroup!r}")
        evaluation["subgroup_column"] = subgroup
        evaluation["subgroups"] = evaluate.by_subgroup(
            model, eval_input, eval_y, output, eval_frame[subgroup].to_numpy()
        )
    training: dict[str, Any] = {"source": "reference data given to modeldeploy bundle"}
    training.update(lineage or {})
    if time_column is not None:
        import pandas as pd

        times = pd.to_datetime(frame[time_column])
        training["time_column"] = time_column
        training["time_range"] = [times.min().isoformat(), times.max().isoformat()]
    kwargs: dict[str, Any] = {
        "name": name,
        "version": version,
        "features": specs,
        "output": output,
        "training_x": frame[names],
        "training_y": y,
        "reference_x": frame,
        "metrics": found,
        "intended_use": text.intended_use or "Not stated by the model's author.",
        "out_of_scope": text.out_of_scope,
        "caveats": text.caveats,
        "directional_checks": text.directional_checks,
        "input_format": input_format,
        "training_data": training,
        "ethical_considerations": text.ethical_considerations,
        "evaluation": evaluation,
        "model_format": model_format,
    }
    target_path = Path(out)
    if target_path.name.endswith((".tar.gz", ".tgz")):
        with tempfile.TemporaryDirectory() as tmp:
            written = write_bundle(Path(tmp), model, **kwargs)
            pack_bundle(Path(tmp), target_path)
    else:
        written = write_bundle(target_path, model, **kwargs)
    return written, bundle_sha256(target_path)

"""The example trainer: the stable model's own pipeline, refitted on the recent labelled window.

A retraining Job runs the user's trainer; this one ships with the project and serves any
model modeldeploy can bundle, because it does not know the model at all: it clones the
stable version's estimator (``sklearn.base.clone``: the same steps and hyperparameters,
unfitted), fits it on the window's training rows as the server would give them to the model,
and bundles it with the held-out rows as its test data. The new card keeps what the author
wrote on the stable's card (intended use, caveats, directional checks, unseen-category
settings) and every category the stable accepted, and names its lineage: the data window and
where it came from, the run, the trainer image and the version it replaces.

The new bundle's drift reference is not the whole window. A run starts because the inputs
moved; with a day's window and drift in its last minutes, a reference from every row would
be mostly the old inputs, and the new version's own drift alert would fire against the very
inputs it was retrained for. The reference is therefore the rows predicted since the drift
began (``reference_since``: when the trigger alert became active), when there are enough of
them, and the whole window otherwise; the lineage says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from modeldeploy.server.bundle import Bundle
from modeldeploy.server.bundling import bundle_model
from modeldeploy.server.bundling.cardfile import CardText
from modeldeploy.server.card import ModelCard
from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.gate import GateError, labelled_input
from modeldeploy.server.loop import recent

DEFAULT_MIN_ROWS = 200
# Fewer rows than this since the drift began, and the whole window is the reference (a
# profile of a few dozen rows would make every bin's share noise).
MIN_REFERENCE_ROWS = 200


class TrainError(ValueError):
    """The window cannot train a candidate (too few rows, labels the model cannot take)."""


@dataclass(frozen=True)
class Window:
    """Where the recent labelled rows came from, for the card's lineage."""

    location: str
    since: datetime | None
    until: datetime | None

    def describe(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def author_text(card: ModelCard) -> CardText:
    """What the author wrote on a card, to write again on its successor's."""
    features: dict[str, dict[str, Any]] = {}
    for spec in card.features:
        settings = {
            k: v
            for k, v in (
                ("description", spec.description),
                ("minimum", spec.minimum),
                ("maximum", spec.maximum),
            )
            if v not in (None, "")
        }
        if settings:
            features[spec.name] = settings
    return CardText(
        intended_use=card.intended_use,
        out_of_scope=card.out_of_scope,
        ethical_considerations=card.ethical_considerations,
        caveats=card.caveats,
        directional_checks=card.directional_checks,
        allow_unseen=tuple(s.name for s in card.features if s.allow_unseen),
        features=features,
    )


def reference_rows(train: Any, since: datetime | None) -> tuple[Any, dict[str, Any]]:
    """The training rows that profile the new bundle's inputs, and what the lineage says of
    them: those predicted at or after ``since`` when there are ``MIN_REFERENCE_ROWS``, else
    all of them."""
    if since is None:
        return train, {"since": None, "rows": int(len(train))}
    at = pd.Timestamp(since if since.tzinfo else since.replace(tzinfo=UTC)).tz_convert("UTC")
    recent_rows = train[train[rc.COLUMN_PREDICTED_AT] >= at]
    described: dict[str, Any] = {"since": since.isoformat(), "rows": int(len(recent_rows))}
    if len(recent_rows) >= MIN_REFERENCE_ROWS:
        return recent_rows, described
    described.update(
        rows=int(len(train)),
        fallback=f"only {len(recent_rows)} training rows predicted since then (fewer than "
        f"{MIN_REFERENCE_ROWS}): the whole window is the reference",
    )
    return train, described


def retrain(
    current: Bundle,
    frame: Any,
    *,
    version: str,
    out: Path,
    window: Window,
    run: str = "",
    trainer_image: str = "",
    min_rows: int = DEFAULT_MIN_ROWS,
    reference_since: datetime | None = None,
) -> tuple[ModelCard, str]:
    """Fit a clone of ``current``'s model on the window's training rows and bundle it to
    ``out``, with the rows since ``reference_since`` as its drift reference (see the
    module's docstring); returns the new card and the digest to pin."""
    from sklearn.base import clone

    card = current.card
    target = card.output.target
    train, held = recent.split(frame)
    if len(train) < min_rows:
        raise TrainError(
            f"{len(train)} labelled rows to train on in the window ({len(frame)} in all, "
            f"{len(held)} held out for the gate), fewer than the minimum {min_rows}"
        )
    train_frame = recent.with_target(train, card.feature_names, target)
    try:
        x, y = labelled_input(train_frame, card, target, "the training rows")
    except GateError as exc:
        raise TrainError(str(exc)) from None
    model = clone(current.model)
    model.fit(x, y)
    reference_train, reference_lineage = reference_rows(train, reference_since)
    lineage = {
        "source": "labelled predictions from the modeldeploy labelled-data store",
        "window": window.describe(),
        "rows": int(len(train)),
        "held_out_rows": int(len(held)),
        "run": run,
        "trainer_image": trainer_image,
        "replaces": {"name": card.name, "version": card.version, "sha256": current.sha256},
        "reference": reference_lineage,
    }
    reference = recent.with_target(reference_train, card.feature_names, target)
    if card.input_format == "dataframe":
        # The model was fitted on a DataFrame with the training dtypes: give the bundle the
        # same frame, so the card's schema is the one the stable serves.
        kept = train.index.get_indexer(reference_train.index)
        for name in card.feature_names:
            reference[name] = x[name].to_numpy()[kept]
    test = recent.with_target(held, card.feature_names, target) if len(held) else None
    return bundle_model(
        model,
        reference,
        target,
        name=card.name,
        version=version,
        out=out,
        test=test,
        positive_class=card.output.positive_class if card.output.classes else None,
        card=author_text(card),
        lineage=lineage,
        known_features=card.features,
        model_format=card.serialization,
    )


def result(version: str, model_uri: str, sha256: str) -> dict[str, str]:
    """The trainer's answer to the operator (``contract.retrain``)."""
    return {rc.RESULT_VERSION: version, rc.RESULT_MODEL_URI: model_uri, rc.RESULT_SHA256: sha256}

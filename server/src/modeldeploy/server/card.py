"""The model card: what a bundle says about its model, as typed values.

The card is the contract between training and serving: the server validates requests
against its input schema, exports its reference profile beside the live bin counts, and
the promotion gate reads its directional checks. Standard library only, so anything that
reads bundles (including tools without numpy) can parse it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from modeldeploy.server.contract import CARD_SCHEMA_VERSION

NUMERIC = "numeric"
INTEGER = "integer"
CATEGORICAL = "categorical"
FEATURE_KINDS = (NUMERIC, INTEGER, CATEGORICAL)

CLASSIFICATION = "classification"
REGRESSION = "regression"


class CardError(ValueError):
    """A model card is missing a field or says something inconsistent."""


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature: its kind and the values a request may carry.

    ``minimum``/``maximum`` are the values that make physical sense (a negative request rate
    is an error), not the training range: values outside the training range are drift, and
    drift must be observed, not refused.
    """

    name: str
    kind: str
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise CardError(
                f"feature {self.name!r}: kind must be one of {FEATURE_KINDS}, not {self.kind!r}"
            )
        if self.kind == CATEGORICAL and not self.categories:
            raise CardError(f"feature {self.name!r}: a categorical feature needs its categories")
        if list(self.categories) != sorted(self.categories):
            raise CardError(f"feature {self.name!r}: categories must be sorted")


@dataclass(frozen=True)
class FeatureReference:
    """The training distribution of one feature, as the drift statistics need it.

    Numeric features: ``edges`` are the inner quantile edges (bin ``i`` holds
    ``edges[i-1] <= x < edges[i]``) and ``fractions`` the reference share of each of the
    ``len(edges)+1`` bins. Categorical features: one bin per category, in the order of the
    spec's categories, and no edges.
    """

    name: str
    edges: tuple[float, ...]
    fractions: tuple[float, ...]
    mean: float
    std: float
    minimum: float
    maximum: float


@dataclass(frozen=True)
class PredictionReference:
    """The model's own predictions on the reference data: the baseline for divergence."""

    mean: float
    std: float
    class_fractions: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Output:
    """What the model answers. For classifiers the exported value is ``P(positive_class)``."""

    kind: str
    target: str
    classes: tuple[Any, ...] = ()
    positive_class: Any = None


@dataclass(frozen=True)
class DirectionalCheck:
    """An expectation the gate tests: raising ``feature`` must not move the output the other way."""

    feature: str
    direction: str  # "increasing" or "decreasing"
    tolerance: float = 0.10  # share of rows allowed to move against it


@dataclass(frozen=True)
class ModelCard:
    """Everything a bundle declares about its model."""

    name: str
    version: str
    created: str
    algorithm: str
    hyperparameters: dict[str, Any]
    training_data: dict[str, Any]
    metrics: dict[str, float]
    intended_use: str
    out_of_scope: tuple[str, ...]
    caveats: tuple[str, ...]
    features: tuple[FeatureSpec, ...]
    output: Output
    reference_size: int
    reference: tuple[FeatureReference, ...]
    prediction_reference: PredictionReference
    directional_checks: tuple[DirectionalCheck, ...] = ()
    sha256: str = ""
    schema_version: str = CARD_SCHEMA_VERSION

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def reference_for(self, name: str) -> FeatureReference:
        for ref in self.reference:
            if ref.name == name:
                return ref
        raise CardError(f"no reference profile for feature {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Parse a card, failing with the name of the first missing or wrong field."""
        try:
            if data.get("schema_version") != CARD_SCHEMA_VERSION:
                raise CardError(
                    f"schema_version is {data.get('schema_version')!r}, expected "
                    f"{CARD_SCHEMA_VERSION!r}"
                )
            features = tuple(
                FeatureSpec(**{**f, "categories": tuple(f.get("categories", ()))})
                for f in data["features"]
            )
            reference = tuple(
                FeatureReference(
                    **{**r, "edges": tuple(r["edges"]), "fractions": tuple(r["fractions"])}
                )
                for r in data["reference"]
            )
            out = data["output"]
            card = cls(
                name=str(data["name"]),
                version=str(data["version"]),
                created=str(data["created"]),
                algorithm=str(data["algorithm"]),
                hyperparameters=dict(data["hyperparameters"]),
                training_data=dict(data["training_data"]),
                metrics={k: float(v) for k, v in data["metrics"].items()},
                intended_use=str(data["intended_use"]),
                out_of_scope=tuple(data["out_of_scope"]),
                caveats=tuple(data["caveats"]),
                features=features,
                output=Output(**{**out, "classes": tuple(out.get("classes", ()))}),
                reference_size=int(data["reference_size"]),
                reference=reference,
                prediction_reference=PredictionReference(**data["prediction_reference"]),
                directional_checks=tuple(
                    DirectionalCheck(**d) for d in data.get("directional_checks", ())
                ),
                sha256=str(data.get("sha256", "")),
                schema_version=str(data["schema_version"]),
            )
        except KeyError as exc:
            raise CardError(f"model card is missing {exc.args[0]!r}") from None
        except TypeError as exc:
            raise CardError(f"model card has a malformed entry: {exc}") from None
        card.check()
        return card

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CardError(f"model card is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CardError("model card must be a JSON object")
        return cls.from_dict(data)

    def check(self) -> None:
        """Cross-field consistency: every feature has a profile with the right number of bins."""
        names = self.feature_names
        if len(set(names)) != len(names):
            raise CardError("feature names must be unique")
        if not names:
            raise CardError("a model needs at least one feature")
        if self.output.kind not in (CLASSIFICATION, REGRESSION):
            raise CardError(f"output kind must be {CLASSIFICATION!r} or {REGRESSION!r}")
        for spec in self.features:
            ref = self.reference_for(spec.name)
            bins = len(spec.categories) if spec.kind == CATEGORICAL else len(ref.edges) + 1
            if len(ref.fractions) != bins:
                raise CardError(
                    f"feature {spec.name!r}: reference has {len(ref.fractions)} fractions for "
                    f"{bins} bins"
                )
        for check in self.directional_checks:
            if check.feature not in names:
                raise CardError(f"directional check on unknown feature {check.feature!r}")
            if check.direction not in ("increasing", "decreasing"):
                raise CardError(
                    f"directional check on {check.feature!r}: direction must be increasing or "
                    "decreasing"
                )

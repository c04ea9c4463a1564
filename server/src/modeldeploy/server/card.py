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
from modeldeploy.server.contract import UNSEEN_BIN as _contract_unseen
from modeldeploy.server.contract.retrain import COLUMN_PREFIX

NUMERIC = "numeric"
INTEGER = "integer"
CATEGORICAL = "categorical"
BOOLEAN = "boolean"
FEATURE_KINDS = (NUMERIC, INTEGER, CATEGORICAL, BOOLEAN)
# Feature kinds whose drift bins are one per category (plus one for unseen values).
DISCRETE_KINDS = (CATEGORICAL, BOOLEAN)
# The label of the extra drift bin that counts values the reference never had.
UNSEEN_BIN = _contract_unseen

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

    Categories are numbers or strings (all of one type, sorted); a boolean feature has the
    categories ``(False, True)``. ``allow_unseen`` lets a categorical feature take values
    outside its categories: they are served and counted in the unseen drift bin instead of
    refused. ``dtype`` is the pandas dtype the model was trained on (``float64``,
    ``int64``, ``bool``, ``object``, ``category``), empty for models fitted on arrays.
    """

    name: str
    kind: str
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[Any, ...] = ()
    allow_unseen: bool = False
    dtype: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise CardError(
                f"feature {self.name!r}: kind must be one of {FEATURE_KINDS}, not {self.kind!r}"
            )
        if self.kind == CATEGORICAL and not self.categories:
            raise CardError(f"feature {self.name!r}: a categorical feature needs its categories")
        if self.kind == BOOLEAN and tuple(self.categories) != (False, True):
            raise CardError(
                f"feature {self.name!r}: a boolean feature has categories [false, true]"
            )
        strings = [isinstance(v, str) for v in self.categories]
        if any(strings) and not all(strings):
            raise CardError(f"feature {self.name!r}: categories must be all numbers or all strings")
        if self.kind == CATEGORICAL and not any(strings):
            for v in self.categories:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise CardError(
                        f"feature {self.name!r}: category {v!r} is neither a number nor a string"
                    )
        if list(self.categories) != sorted(self.categories):
            raise CardError(f"feature {self.name!r}: categories must be sorted")
        if len(set(self.categories)) != len(self.categories):
            raise CardError(f"feature {self.name!r}: categories must be unique")

    @property
    def discrete(self) -> bool:
        """One drift bin per category (categorical and boolean features)."""
        return self.kind in DISCRETE_KINDS

    @property
    def string_categories(self) -> bool:
        return self.kind == CATEGORICAL and isinstance(self.categories[0], str)


@dataclass(frozen=True)
class FeatureReference:
    """The training distribution of one feature, as the drift statistics need it.

    Numeric features: ``edges`` are the inner quantile edges (bin ``i`` holds
    ``edges[i-1] <= x < edges[i]``) and ``fractions`` the reference share of each of the
    ``len(edges)+1`` bins. Categorical and boolean features: one bin per category, in the
    order of the spec's categories, and no edges; the server adds one more bin for unseen
    values, whose reference share is zero.
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
    """What the model answers. For classifiers the exported value is ``P(positive_class)``.

    Classes are numbers or strings, in the order of the estimator's ``classes_``.
    """

    kind: str
    target: str
    classes: tuple[Any, ...] = ()
    positive_class: Any = None

    @property
    def multiclass(self) -> bool:
        return self.kind == CLASSIFICATION and len(self.classes) > 2


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
    # Added for users' own models; cards written before them load with the defaults.
    # "dataframe": the model was fitted on a DataFrame (it has feature_names_in_) and is
    # given one; "array": it is given a float array in the features' order.
    input_format: str = "array"
    ethical_considerations: tuple[str, ...] = ()
    # How the metrics were measured (data, rows) and per subgroup: {column: {value: metrics}}.
    evaluation: dict[str, Any] = field(default_factory=dict)
    # How the model file is stored ("joblib" or "skops", see serialization.py) and, for skops,
    # the types its loader may rebuild beyond its own safe ones (pinned with the card).
    serialization: str = "joblib"
    trusted_types: tuple[str, ...] = ()

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def reference_for(self, name: str) -> FeatureReference:
        for ref in self.reference:
            if ref.name == name:
                return ref
        raise CardError(f"no reference profile for feature {name!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.serialization == "joblib" and not self.trusted_types:
            # the default: cards stay byte for byte what they were before skops bundles
            del out["serialization"], out["trusted_types"]
        return out

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
                input_format=str(data.get("input_format", "array")),
                ethical_considerations=tuple(data.get("ethical_considerations", ())),
                evaluation=dict(data.get("evaluation", {})),
                serialization=str(data.get("serialization", "joblib")),
                trusted_types=tuple(str(t) for t in data.get("trusted_types", ())),
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
        reserved = [n for n in names if n.startswith(COLUMN_PREFIX)]
        if reserved:
            raise CardError(
                f"feature {reserved[0]!r}: names starting with {COLUMN_PREFIX!r} are reserved "
                "(the labelled-data store's own columns)"
            )
        if self.output.kind not in (CLASSIFICATION, REGRESSION):
            raise CardError(f"output kind must be {CLASSIFICATION!r} or {REGRESSION!r}")
        if self.serialization not in ("joblib", "skops"):
            raise CardError(
                f"serialization must be 'joblib' or 'skops', not {self.serialization!r}"
            )
        if self.trusted_types and self.serialization != "skops":
            raise CardError("trusted_types applies only to a skops model")
        if self.input_format not in ("array", "dataframe"):
            raise CardError(
                f"input_format must be 'array' or 'dataframe', not {self.input_format!r}"
            )
        if (
            self.output.kind == CLASSIFICATION
            and self.output.positive_class not in self.output.classes
        ):
            raise CardError(f"positive class {self.output.positive_class!r} is not a class")
        for spec in self.features:
            ref = self.reference_for(spec.name)
            bins = len(spec.categories) if spec.discrete else len(ref.edges) + 1
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

"""An MLflow scikit-learn model as ``modeldeploy bundle``'s MODEL: a folder written by
``mlflow.sklearn.log_model`` or ``save_model`` (it has an ``MLmodel`` file), or a
``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` URI of a registry, so a model a data
scientist already logged becomes a bundle without training it again.

The model file is read as ``MLmodel`` says (its ``sklearn`` flavor's ``pickled_model`` and
``serialization_format``): ``skops`` (MLflow 3's default) is rebuilt by skops with exactly
the types ``MLmodel`` lists in ``skops_trusted_types`` (what the data scientist trusted when
logging), ``pickle`` and ``cloudpickle`` are unpickled, which runs the code the file names:
bundle only models you would run. No mlflow package is needed; a registry version is
downloaded through the tracking server's artifacts proxy by the same client as
``modeldeploy fetch`` (credentials from ``$MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or
``$MLFLOW_TRACKING_TOKEN``).
"""

from __future__ import annotations

import importlib.util
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modeldeploy.server import serialization
from modeldeploy.server.contract import sources as c

MLMODEL = "MLmodel"
FORMATS = ("skops", "pickle", "cloudpickle")


class MLflowModelError(Exception):
    """The MLflow model cannot be read (no sklearn flavor, unknown format, missing file)."""


@dataclass(frozen=True)
class MLflowModel:
    """The fitted estimator and how MLflow had stored it."""

    model: Any
    serialization_format: str
    trusted: tuple[str, ...]  # skops_trusted_types ("" for the pickles)
    source: str


def is_mlflow_model(model: str) -> bool:
    """Is ``bundle``'s MODEL an MLflow model (rather than a joblib file)?"""
    return model.startswith(c.MODELS_SCHEME) or (Path(model) / MLMODEL).is_file()


def load_mlflow_model(model: str, tracking_uri: str = "") -> MLflowModel:
    """The estimator of an MLflow model folder or ``models:/`` URI (see the module)."""
    if not model.startswith(c.MODELS_SCHEME):
        return read_folder(Path(model), model)
    from modeldeploy.server.sources.base import FetchError, Retry
    from modeldeploy.server.sources.mlflow import MLflowSettings, MLflowSource

    try:
        settings = MLflowSettings.from_env(tracking_uri)
        with tempfile.TemporaryDirectory(prefix="modeldeploy-mlflow-") as work:
            folder = MLflowSource(model, settings).stage(Path(work), Retry())
            return read_folder(folder, model)
    except FetchError as exc:
        raise MLflowModelError(str(exc)) from None


def _flavor(folder: Path, source: str) -> dict[str, Any]:
    import yaml

    try:
        meta = yaml.safe_load((folder / MLMODEL).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MLflowModelError(f"{source}: cannot read its {MLMODEL} file: {exc}") from None
    flavor = ((meta or {}).get("flavors") or {}).get("sklearn") if isinstance(meta, dict) else None
    if not isinstance(flavor, dict):
        raise MLflowModelError(
            f"{source}: {MLMODEL} has no sklearn flavor (log it with mlflow.sklearn.log_model)"
        )
    return flavor


def read_folder(folder: Path, source: str) -> MLflowModel:
    """The estimator in an MLflow model folder, read in its ``serialization_format``."""
    flavor = _flavor(folder, source)
    fmt = str(flavor.get("serialization_format") or "cloudpickle")
    if fmt not in FORMATS:
        raise MLflowModelError(
            f"{source}: serialization_format {fmt!r} is not one of {', '.join(FORMATS)}"
        )
    name = str(flavor.get("pickled_model") or "")
    path = folder / name
    if not name or "/" in name or not path.is_file():
        raise MLflowModelError(f"{source}: the model file {name!r} named in {MLMODEL} is missing")
    data = path.read_bytes()
    trusted = tuple(str(t) for t in flavor.get("skops_trusted_types") or ())
    if fmt == "skops":
        try:
            model = serialization.load(data, serialization.SKOPS, trusted)
        except serialization.SerializationError as exc:
            raise MLflowModelError(f"{source}: {exc}") from None
    else:
        if fmt == "cloudpickle" and importlib.util.find_spec("cloudpickle") is None:
            # its functions rebuild what it pickled: unpickling imports it
            raise MLflowModelError(f"{source}: a cloudpickle model needs the cloudpickle package")
        model = pickle.loads(data)  # noqa: S301 - the user's own model, as MLflow would load it
    return MLflowModel(model, fmt, trusted, source)

"""``modeldeploy register BUNDLE --tracking-uri URL --name NAME [--alias A]``: a bundle as a
new version in an MLflow Model Registry.

The bundle's files are uploaded through the tracking server's artifacts proxy into a run of
the experiment ``modeldeploy-register`` (MLflow wants a version's files to belong to a run);
the version is created from them with tags taken from the card, so that the registry entry
and the card agree:

  modeldeploy.sha256             the bundle digest: the pin of `modeldeploy fetch models:/...`
  modeldeploy.data_fingerprint   the training data's fingerprint
  modeldeploy.metric.NAME        each of the card's metrics (also logged on the run)
  modeldeploy.card_version       the card's own version string

Beside the bundle's files it uploads model.pkl (the same fitted model, pickled) and an
MLmodel file with the sklearn flavor, so that mlflow.sklearn.load_model("models:/NAME/V")
loads it too. modeldeploy itself never reads them: it loads model.joblib, pinned by the
bundle digest, which does not cover model.pkl.

--alias then points the alias at the new version. Prints the version number, its
models:/NAME/VERSION URI and, with --alias, models:/NAME@ALIAS. Needs no mlflow package.
Credentials only from the environment, as for fetch: $MLFLOW_TRACKING_USERNAME and
$MLFLOW_TRACKING_PASSWORD (basic auth), or $MLFLOW_TRACKING_TOKEN (bearer).
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from modeldeploy.server.contract import CARD_FILE, MODEL_FILE, MODEL_FILE_SKOPS, MODEL_FILES
from modeldeploy.server.contract import sources as c
from modeldeploy.server.digest import folder_digest
from modeldeploy.server.serialization import SKOPS
from modeldeploy.server.sources.base import FetchError, Retry, is_tar
from modeldeploy.server.sources.mlflow import Resolved
from modeldeploy.server.sources.mlflow_api import (
    Client,
    MLflowSettings,
    RegistryError,
    artifact_path,
)

EXPERIMENT = "modeldeploy-register"
TAG_VALUE_LIMIT = 5000  # MLflow's longest model version tag value
MLFLOW_PICKLE = "model.pkl"


def card_tags(card: dict[str, Any], digest: str) -> dict[str, str]:
    """The version's tags: the digest pin and what the card says about the model."""
    tags = {c.TAG_SHA256: digest}
    fingerprint = card.get("training_data", {}).get("fingerprint")
    if fingerprint:
        tags[c.TAG_DATA_FINGERPRINT] = str(fingerprint)
    if card.get("version"):
        tags[c.TAG_MODEL_VERSION] = str(card["version"])[:TAG_VALUE_LIMIT]
    for metric, value in sorted(card.get("metrics", {}).items()):
        tags[c.TAG_METRIC_PREFIX + metric] = repr(float(value))
    return tags


def mlflow_model(bundle: Path, out: Path, card: dict[str, Any]) -> list[Path]:
    """``model.pkl`` and ``MLmodel`` (as JSON, which is YAML) in ``out``, for MLflow's
    sklearn flavor; none when the model does not pickle (a warning says so)."""
    import joblib
    import sklearn

    if (bundle / MLFLOW_PICKLE).exists() or (bundle / "MLmodel").exists():
        print(f"register: warning: {bundle} has its own MLmodel or model.pkl", file=sys.stderr)
        return []
    if card.get("serialization") == SKOPS:
        # MLflow reads skops itself, with the trusted types the card pins: no pickle beside it.
        model_file, fmt, written = MODEL_FILE_SKOPS, SKOPS, []
        trusted: dict[str, Any] = {"skops_trusted_types": list(card.get("trusted_types", []))}
    else:
        try:
            data = pickle.dumps(joblib.load(bundle / MODEL_FILE), pickle.DEFAULT_PROTOCOL)
        except Exception as exc:  # a model that joblib saved but pickle cannot: leave it out
            print(f"register: warning: no MLmodel ({exc}): not loadable by mlflow", file=sys.stderr)
            return []
        (out / MLFLOW_PICKLE).write_bytes(data)
        model_file, fmt, written = MLFLOW_PICKLE, "pickle", [out / MLFLOW_PICKLE]
        trusted = {}
    python = platform.python_version()
    flavors = {
        "python_function": {
            "loader_module": "mlflow.sklearn",
            "data": model_file,
            "python_version": python,
        },
        "sklearn": {
            "pickled_model": model_file,
            "serialization_format": fmt,
            "sklearn_version": sklearn.__version__,
            "code": None,
            **trusted,
        },
    }
    mlmodel = {
        "artifact_path": "model",
        "flavors": flavors,
        "utc_time_created": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime()),
        "metadata": {"modeldeploy.sha256": folder_digest(bundle), "card": card.get("name")},
    }
    (out / "MLmodel").write_text(json.dumps(mlmodel, indent=2) + "\n", encoding="utf-8")
    return [*written, out / "MLmodel"]


def _experiment_id(client: Client) -> str:
    try:
        got = client.call("GET", "experiments/get-by-name", experiment_name=EXPERIMENT)
        return str(got["experiment"]["experiment_id"])
    except RegistryError as exc:
        if exc.status != 404:
            raise
    try:
        return str(client.call("POST", "experiments/create", name=EXPERIMENT)["experiment_id"])
    except RegistryError as exc:  # created meanwhile by another register
        if exc.code != "RESOURCE_ALREADY_EXISTS":
            raise
        got = client.call("GET", "experiments/get-by-name", experiment_name=EXPERIMENT)
        return str(got["experiment"]["experiment_id"])


def register(
    bundle: Path,
    settings: MLflowSettings,
    name: str,
    alias: str = "",
    retry: Retry | None = None,
) -> Resolved:
    """Upload ``bundle`` (a folder or .tar.gz) as a new version of ``name``; return it."""
    uri = f"{c.MODELS_SCHEME}{name}@{alias}" if alias else f"{c.MODELS_SCHEME}{name}/1"
    try:
        c.split_models_uri(uri)  # the name and alias rules fetch will apply
    except ValueError as exc:
        raise FetchError(str(exc).replace("/1", "")) from None
    if is_tar(bundle.name):
        from modeldeploy.server.fetch import bundle_root, unpack

        with tempfile.TemporaryDirectory() as tmp:
            unpack(bundle, Path(tmp) / "bundle")
            return register(bundle_root(Path(tmp) / "bundle"), settings, name, alias, retry)
    try:
        digest = folder_digest(bundle)
    except (OSError, ValueError) as exc:
        raise FetchError(
            f"{bundle}: not a bundle (it needs {' or '.join(MODEL_FILES)} and {CARD_FILE}: {exc})"
        ) from None
    try:
        card = json.loads((bundle / CARD_FILE).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise FetchError(f"{bundle / CARD_FILE}: not a readable card: {exc}") from None
    tags = card_tags(card, digest)
    client = Client(settings, retry or Retry())
    try:
        client.call("POST", "registered-models/create", name=name)
    except RegistryError as exc:
        if exc.code != "RESOURCE_ALREADY_EXISTS":
            raise
    run = client.call(
        "POST",
        "runs/create",
        experiment_id=_experiment_id(client),
        run_name=re.sub(r"[^A-Za-z0-9_.-]", "-", f"{name}-{card.get('version', '')}"),
        start_time=int(time.time() * 1000),
        tags=[{"key": c.TAG_SHA256, "value": digest}],
    )["run"]["info"]
    source = f"{run['artifact_uri'].rstrip('/')}/model"
    root = artifact_path(source)
    files = {p.relative_to(bundle).as_posix(): p for p in bundle.rglob("*") if p.is_file()}
    with tempfile.TemporaryDirectory() as tmp:
        for extra in mlflow_model(bundle, Path(tmp), card):
            files[extra.name] = extra
        for rel, path in sorted(files.items()):
            client.upload(f"{root}/{rel}", path)
    now = int(time.time() * 1000)
    metrics = [
        {"key": k, "value": float(v), "timestamp": now, "step": 0}
        for k, v in sorted(card.get("metrics", {}).items())
    ]
    client.call("POST", "runs/log-batch", run_id=run["run_id"], metrics=metrics)
    client.call("POST", "runs/update", run_id=run["run_id"], status="FINISHED", end_time=now)
    created = client.call(
        "POST",
        "model-versions/create",
        name=name,
        source=source,
        run_id=run["run_id"],
        tags=[{"key": k, "value": v} for k, v in tags.items()],
        description=f"modeldeploy bundle {card.get('name', '')} {card.get('version', '')}",
    )
    version = str(created["model_version"]["version"])
    if alias:
        client.call("POST", "registered-models/alias", name=name, alias=alias, version=version)
    return Resolved(name, version, alias, source, digest)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``register`` to the ``modeldeploy`` parser."""
    parser = commands.add_parser(
        "register",
        help="upload a bundle to an MLflow Model Registry as a new model version",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle", metavar="BUNDLE", type=Path, help="bundle folder or .tar.gz")
    parser.add_argument(
        c.FLAG_MLFLOW_TRACKING_URI,
        dest="tracking_uri",
        required=True,
        metavar="URL",
        help="the MLflow tracking server, http(s)://HOST[:PORT][/PATH]; it must serve "
        "artifacts (mlflow server --serve-artifacts)",
    )
    parser.add_argument("--name", required=True, help="the registered model's name")
    parser.add_argument(
        "--alias", default="", metavar="ALIAS", help="point this alias at the new version"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = MLflowSettings.from_env(args.tracking_uri)
        got = register(args.bundle, settings, args.name, args.alias)
    except FetchError as exc:
        print(f"register: error: {exc}", file=sys.stderr)
        return 2
    print(f"register: {args.bundle} is version {got.version} of {got.name!r}", file=sys.stderr)
    print(got.version)
    print(got.uri)
    if got.alias:
        print(f"{c.MODELS_SCHEME}{got.name}@{got.alias}")
    return 0

"""The bundle commands: ``bundle`` (a user's fitted model, or an MLflow model, with its
reference data), ``card`` (its model card as Markdown) and ``digest`` (the sha256 to pin).

Registered without importing scikit-learn or MLflow; each command imports what it needs when
it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from modeldeploy.server.contract import sources
from modeldeploy.server.logsetup import setup_logging


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bundle = commands.add_parser(
        "bundle",
        help="bundle your own fitted model with its reference data",
        description="Write the bundle of a fitted scikit-learn estimator or Pipeline (saved with "
        "joblib, or an MLflow model): the schema comes from the reference data, classes from "
        "the model, metrics from --test or a held-out 25% of the data. Prints the bundle "
        "sha256 to pin.",
    )
    bundle.add_argument(
        "model",
        metavar="MODEL",
        help="the fitted model: a joblib.dump'ed file, a folder written by "
        "mlflow.sklearn.log_model/save_model (with an MLmodel file), or models:/NAME/VERSION "
        "or models:/NAME@ALIAS (read as MLmodel's serialization_format says: skops, pickle "
        "or cloudpickle)",
    )
    bundle.add_argument("out", metavar="OUT", help="bundle folder, or a path ending in .tar.gz")
    bundle.add_argument(
        "--data", required=True, metavar="REF", help="reference data (.csv or .parquet)"
    )
    bundle.add_argument("--target", required=True, metavar="COL", help="the target column")
    bundle.add_argument("--name", required=True, help="model name")
    bundle.add_argument("--version", required=True, help="model version")
    bundle.add_argument("--test", metavar="T", help="labelled test data (.csv or .parquet)")
    bundle.add_argument("--positive-class", metavar="C", help="class whose P() is exported")
    bundle.add_argument("--card", metavar="CARD.yaml", help="intended use, caveats, checks...")
    bundle.add_argument("--subgroup", metavar="COL", help="evaluate per value of this column")
    bundle.add_argument("--time-column", metavar="COL", help="record the data's time range")
    bundle.add_argument(
        "--format",
        dest="model_format",
        choices=("joblib", "skops"),
        default=None,
        help="how the model is stored: joblib (default: any pipeline) or skops (its loader "
        "rebuilds only the types the card trusts; the types are recorded when bundling; the "
        "default for an MLflow model stored as skops)",
    )
    bundle.add_argument(
        sources.FLAG_MLFLOW_TRACKING_URI,
        dest="tracking_uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", ""),
        metavar="URI",
        help="the MLflow tracking server of a models:/ MODEL (default $MLFLOW_TRACKING_URI); "
        "credentials from $MLFLOW_TRACKING_USERNAME/PASSWORD or $MLFLOW_TRACKING_TOKEN",
    )
    bundle.set_defaults(run=run_bundle)

    card = commands.add_parser(
        "card", help="print a bundle's model card as Markdown (never unpickles the model)"
    )
    card.add_argument("bundle", metavar="BUNDLE")
    card.set_defaults(run=run_card)

    digest = commands.add_parser(
        "digest", help="print the bundle sha256 (model and card) to pin in a ModelDeployment"
    )
    digest.add_argument("bundle", metavar="BUNDLE")
    digest.set_defaults(run=run_digest)


def run_bundle(args: argparse.Namespace) -> int:
    setup_logging("warning")
    from pathlib import Path

    import joblib

    from modeldeploy.server.bundling import SchemaError, bundle_model
    from modeldeploy.server.bundling.cardfile import CardFileError
    from modeldeploy.server.bundling.mlflowmodel import (
        MLflowModelError,
        is_mlflow_model,
        load_mlflow_model,
    )
    from modeldeploy.server.bundling.schema import read_table
    from modeldeploy.server.card import CardError
    from modeldeploy.server.serialization import SerializationError

    try:
        model_format = args.model_format or "joblib"
        if is_mlflow_model(args.model):
            logged = load_mlflow_model(args.model, args.tracking_uri)
            model = logged.model
            model_format = args.model_format or (
                "skops" if logged.serialization_format == "skops" else "joblib"
            )
        else:
            model = joblib.load(args.model)
        data = read_table(args.data)
        test = read_table(args.test) if args.test else None
        card, digest = bundle_model(
            model,
            data,
            args.target,
            name=args.name,
            version=args.version,
            out=Path(args.out),
            test=test,
            positive_class=args.positive_class,
            card=Path(args.card) if args.card else None,
            subgroup=args.subgroup,
            time_column=args.time_column,
            model_format=model_format,
        )
    except (
        SchemaError,
        CardFileError,
        CardError,
        SerializationError,
        MLflowModelError,
        OSError,
    ) as exc:
        print(f"bundle: error: {exc}", file=sys.stderr)
        return 2
    shown = ", ".join(f"{k} {v:.3f}" for k, v in card.metrics.items())
    print(f"{card.name} {card.version}: {shown}", file=sys.stderr)
    print(digest)
    return 0


def run_card(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modeldeploy.server.bundle import BundleError, bundle_sha256, read_card
    from modeldeploy.server.bundling.markdown import card_markdown

    try:
        path = Path(args.bundle)
        print(card_markdown(read_card(path), bundle_sha256(path)), end="")
    except (BundleError, ValueError) as exc:
        print(f"card: error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_digest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modeldeploy.server.bundle import BundleError, bundle_sha256

    try:
        print(bundle_sha256(Path(args.bundle)))
    except BundleError as exc:
        print(f"digest: error: {exc}", file=sys.stderr)
        return 2
    return 0

"""``modeldeploy retrain``: the example trainer, as a training Job runs it.

Every input has a flag and, for the Job, an environment variable the operator sets
(``contract.retrain``), so the same command runs by hand and in the Job unchanged.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.contract import sources as c
from modeldeploy.server.logsetup import setup_logging

log = logging.getLogger("modeldeploy.retrain")


def _env(name: str) -> str:
    return os.environ.get(name, "")


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 time (UTC when it names no zone); empty: no bound."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01T00:00:00Z)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def add_settle_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=None,
        metavar="S",
        help="wait until this long after --until before reading, so the model servers have "
        "written the window's last labels (they keep rows up to --labelled-max-age, 60 s by "
        "default, before writing; default: that plus 10 s)",
    )


def settle(until: datetime, seconds: float | None) -> None:
    """Wait until the writers have had time to write every row labelled before ``until``:
    a run starts the moment drift fires, and the labels of its last minute are still in the
    servers' memory then. Reading at once would lose the most recent (the most telling)
    rows."""
    if seconds is None:
        from modeldeploy.server.labelled.writer import Limits

        seconds = Limits().max_age + 10.0
    wait = until.timestamp() + seconds - time.time()
    if wait > 0:
        log.info("waiting %.0f s for the model servers to write the window's last labels", wait)
        time.sleep(wait)


def store_settings(args: argparse.Namespace) -> Any:
    """The S3 settings of the store: the flags, else what the operator put in the Job's
    environment, plus the credentials there."""
    from modeldeploy.server.sources.s3client import S3Settings, s3_flags

    endpoint, region, path_style = s3_flags(args)
    style = _env(rc.ENV_S3_PATH_STYLE).lower()
    if path_style is None and style in ("true", "false"):
        path_style = style == "true"
    return S3Settings.from_env(
        endpoint or _env(rc.ENV_S3_ENDPOINT), region or _env(rc.ENV_S3_REGION), path_style
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from modeldeploy.server.sources.s3 import add_s3_arguments

    parser = commands.add_parser(
        "retrain",
        help="refit the stable model's pipeline on recent labelled data (the example trainer)",
        description="Refit a clone of the current bundle's model on the recent labelled "
        "window of the labelled-data store (three requests in four; the fourth is held out "
        "for the gate), bundle it with its lineage (the window, the run, the trainer image, "
        "the version it replaces) and, with --registered-model, register it in MLflow or, "
        "with --output, write it to S3 or an http(s) URL. Every "
        "flag defaults to the environment variable a retraining Job gets. Exit status 0 with "
        "a new version, 1 when the window cannot train one, 2 on bad input.",
    )
    parser.add_argument(
        "--current",
        default=_env(rc.ENV_CURRENT),
        metavar="BUNDLE",
        help=f"the stable bundle to refit (${rc.ENV_CURRENT})",
    )
    parser.add_argument(
        "--current-sha256",
        default=_env(rc.ENV_CURRENT_SHA256),
        metavar="HEX",
        help=f"its pinned digest: it is not unpickled without (${rc.ENV_CURRENT_SHA256})",
    )
    parser.add_argument(
        "--data",
        default=_env(rc.ENV_DATA),
        metavar="LOCATION",
        help=f"the labelled-data store, s3://BUCKET/PREFIX or a folder (${rc.ENV_DATA})",
    )
    parser.add_argument(
        "--since",
        type=parse_time,
        default=_env(rc.ENV_SINCE),
        metavar="TIME",
        help=f"the window's start, ISO 8601 (${rc.ENV_SINCE}; default: the store's oldest)",
    )
    parser.add_argument(
        "--until",
        type=parse_time,
        default=_env(rc.ENV_UNTIL),
        metavar="TIME",
        help=f"the window's end (${rc.ENV_UNTIL}; default: now)",
    )
    parser.add_argument(
        "--reference-since",
        type=parse_time,
        default=_env(rc.ENV_REFERENCE_SINCE),
        metavar="TIME",
        help="profile the new bundle's inputs (its drift reference) on the rows predicted "
        "since then, when the drift began, if enough were (else, and by default, on the whole "
        f"window; the card's lineage says which) (${rc.ENV_REFERENCE_SINCE})",
    )
    parser.add_argument(
        "--min-rows",
        type=int,
        default=200,
        help="training rows the window must give (default 200)",
    )
    parser.add_argument(
        "--version",
        default=_env(rc.ENV_VERSION),
        help=f"the new card's version (${rc.ENV_VERSION}; default: the registry's next "
        "version number, or CURRENT-retrained without a registry)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the bundle (default: a temp dir)"
    )
    parser.add_argument(
        "--registered-model",
        default=_env(rc.ENV_REGISTERED_MODEL),
        metavar="NAME",
        help=f"register the bundle as a new version of NAME (${rc.ENV_REGISTERED_MODEL})",
    )
    parser.add_argument(
        "--output",
        default=_env(rc.ENV_OUTPUT),
        metavar="URI",
        help="write the bundle to this s3://BUCKET/KEY.tar.gz object (with the store's S3 "
        "settings and credentials) or PUT it to this http(s)://HOST/PATH.tar.gz URL (with the "
        f"bearer token ${rc.ENV_OUTPUT_TOKEN}, if set) instead of registering it "
        f"(${rc.ENV_OUTPUT})",
    )
    parser.add_argument(
        c.FLAG_MLFLOW_TRACKING_URI,
        dest="tracking_uri",
        default=_env(rc.ENV_TRACKING_URI),
        metavar="URL",
        help=f"the MLflow tracking server (${rc.ENV_TRACKING_URI})",
    )
    parser.add_argument(
        "--run", dest="run_id", default=_env(rc.ENV_RUN), help=f"the run's id (${rc.ENV_RUN})"
    )
    parser.add_argument(
        "--result-file",
        # In a retraining Job (the operator sets the run's id) the answer goes where
        # Kubernetes keeps the termination message; by hand, it is only printed.
        default=rc.TERMINATION_LOG if _env(rc.ENV_RUN) else "",
        metavar="PATH",
        help=f"write the answer as JSON here (default in a retraining Job, when ${rc.ENV_RUN} "
        f"is set: {rc.TERMINATION_LOG})",
    )
    add_settle_argument(parser)
    add_s3_arguments(
        parser,
        f"an s3:// store (defaults: ${rc.ENV_S3_ENDPOINT}, ${rc.ENV_S3_REGION}, "
        f"${rc.ENV_S3_PATH_STYLE})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    setup_logging("info")
    from modeldeploy.server.bundle import BundleError, load_bundle
    from modeldeploy.server.bundling import SchemaError
    from modeldeploy.server.labelled import LabelledDataError, read_window
    from modeldeploy.server.loop import output, result, trainer
    from modeldeploy.server.sources.base import FetchError

    if not args.current or not args.data:
        print("retrain: error: --current and --data are required", file=sys.stderr)
        return 2
    if not args.current_sha256:
        print(
            "retrain: error: no digest for the current bundle: unpickling runs code, so "
            f"pass --current-sha256 (or set {rc.ENV_CURRENT_SHA256})",
            file=sys.stderr,
        )
        return 2
    if args.output and args.registered_model:
        print("retrain: error: --output and --registered-model exclude each other", file=sys.stderr)
        return 2
    until = args.until or datetime.now(UTC)
    try:
        if args.output:
            output.check(args.output)
        current = load_bundle(Path(args.current), args.current_sha256)
        card = current.card
        log.info("current: %s %s (sha256 %s)", card.name, card.version, current.sha256)
        settle(until, args.settle_seconds)
        started = time.monotonic()
        frame = read_window(
            args.data, since=args.since, until=until, model=card.name, s3=store_settings(args)
        )
        log.info(
            "window %s .. %s: %d labelled rows read in %.1f s",
            args.since.isoformat() if args.since else "start",
            until.isoformat(),
            len(frame),
            time.monotonic() - started,
        )
        version = args.version or _next_version(args, card.version)
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp) / "bundle"
            started = time.monotonic()
            new_card, digest = trainer.retrain(
                current,
                frame,
                version=version,
                out=out,
                window=trainer.Window(args.data, args.since, until),
                run=args.run_id,
                trainer_image=_env(rc.ENV_TRAINER_IMAGE),
                min_rows=args.min_rows,
                reference_since=args.reference_since,
            )
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(new_card.metrics.items()))
            log.info(
                "fitted %s %s in %.1f s on %s rows; held out: %s",
                new_card.name,
                version,
                time.monotonic() - started,
                new_card.training_data.get("rows"),
                metrics or "no metrics",
            )
            model_uri = str(out)
            if args.registered_model:
                model_uri, version = _register(args, out)
            elif args.output:
                size = output.write(out, args.output, store_settings(args))
                log.info("wrote %s (%d bytes)", args.output, size)
                model_uri = args.output
    except (trainer.TrainError, LabelledDataError) as exc:
        print(f"retrain: {exc}", file=sys.stderr)
        return 1
    except (BundleError, SchemaError, FetchError, ValueError) as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return 2
    answer = trainer.result(version, model_uri, digest)
    result.write(args.result_file, answer)
    print(f"retrain: version {version} at {model_uri} (sha256 {digest})")
    return 0


def _next_version(args: argparse.Namespace, current: str) -> str:
    """The registry's next version number (unique, as the rules key alerts by version), or
    a name derived from the current version without a registry."""
    if not args.registered_model:
        return f"{current}-retrained"
    from modeldeploy.server.sources.base import Retry
    from modeldeploy.server.sources.mlflow_api import Client, MLflowSettings, RegistryError

    client = Client(MLflowSettings.from_env(args.tracking_uri), Retry())
    try:
        answer = client.call("GET", "registered-models/get", name=args.registered_model)
    except RegistryError as exc:
        if exc.status == 404:
            return "1"
        raise
    versions = answer.get("registered_model", {}).get("latest_versions", [])
    return str(max((int(v["version"]) for v in versions), default=0) + 1)


def _register(args: argparse.Namespace, bundle: Path) -> tuple[str, str]:
    from modeldeploy.server.register import register as register_bundle
    from modeldeploy.server.sources.mlflow_api import MLflowSettings

    got = register_bundle(bundle, MLflowSettings.from_env(args.tracking_uri), args.registered_model)
    log.info("registered as version %s of %r", got.version, got.name)
    return f"{c.MODELS_SCHEME}{got.name}/{got.version}", got.version

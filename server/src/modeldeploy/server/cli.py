"""Subcommands of the server half: serve, example-bundle, example-data, gate, (from
``bundlecli``) bundle, card, digest, and (from ``labelledcli``) labelled-data.

Registered without importing FastAPI or scikit-learn; each command imports what it needs
when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from modeldeploy.server import bundlecli, labelledcli
from modeldeploy.server import contract as c
from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.logsetup import setup_logging
from modeldeploy.server.loop import cli as loop_cli
from modeldeploy.server.loop.cli import parse_time
from modeldeploy.server.sources.s3 import add_s3_arguments

log = logging.getLogger("modeldeploy.server")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the server's subcommands to the ``modeldeploy`` parser."""
    serve = commands.add_parser(
        "serve",
        help="serve a model bundle over HTTP",
        description="Serve one model bundle with FastAPI on uvicorn. The bundle's model.joblib is "
        "unpickled only if its sha256 matches the pinned digest.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("bundle", metavar="BUNDLE", help="bundle folder or .tar.gz")
    serve.add_argument(
        c.FLAG_SHA256,
        dest="sha256",
        metavar="HEX",
        default=argparse.SUPPRESS,
        help="pinned bundle sha256 (covers model.joblib and model-card.json; printed by "
        f"`modeldeploy bundle`); read from ${c.ENV_SHA256} when not given",
    )
    serve.add_argument(c.FLAG_HOST, dest="host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        c.FLAG_PORT, dest="port", type=int, default=c.DEFAULT_PORT, help="port to listen on"
    )
    serve.add_argument(
        c.FLAG_ROLE,
        dest="role",
        choices=c.ROLES,
        default="stable",
        help="role label on every metric",
    )
    serve.add_argument(
        "--max-batch-rows", type=int, default=256, help="most rows predicted in one model call"
    )
    serve.add_argument(
        "--max-batch-wait-ms",
        type=float,
        default=2.0,
        help="longest a batch waits for more requests to arrive",
    )
    serve.add_argument(
        "--max-request-rows", type=int, default=1024, help="most rows in one request"
    )
    serve.add_argument("--drift-window", type=int, default=5000, help="recent rows kept for /drift")
    serve.add_argument(
        "--no-drift",
        dest="drift",
        action="store_false",
        help="turn off drift bookkeeping (to measure what monitoring costs)",
    )
    serve.add_argument(
        c.FLAG_FEEDBACK_PEERS,
        dest="feedback_peers",
        default="",
        metavar="NAME[:PORT][,...]",
        help="the other replicas (a headless Service's name): /feedback for a request id "
        "this process did not answer is forwarded to them",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    labelledcli.add_serve_arguments(serve)
    serve.set_defaults(run=run_serve)

    bundlecli.register(commands)
    loop_cli.register(commands)
    labelledcli.register(commands)

    example = commands.add_parser(
        "example-bundle",
        help="build an example bundle (the SRE incident predictor)",
        description="Train the incident predictor on synthetic telemetry and write its bundle; "
        "prints the bundle sha256 to pin.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    example.add_argument(
        "out", metavar="OUT", help="bundle folder to write (or a path ending in .tar.gz)"
    )
    example.add_argument("--version", required=True, help="model version to record in the card")
    example.add_argument(
        "--variant",
        choices=("good", "drifted", "diverging"),
        default="good",
        help="good: healthy retrain; drifted: trained on shifted inputs; "
        "diverging: predicts systematically more incidents",
    )
    example.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bundle)")
    example.set_defaults(run=run_example_bundle)

    data = commands.add_parser(
        "example-data",
        help="write labelled example data as CSV (for gate)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data.add_argument("out", metavar="FILE.csv")
    data.add_argument("--rows", type=int, default=2000)
    data.add_argument("--seed", type=int, default=1000)
    data.add_argument("--shifted", action="store_true", help="shifted (drifted) inputs")
    data.set_defaults(run=run_example_data)

    gate = commands.add_parser(
        "gate",
        help="decide whether a candidate bundle earns promotion",
        description="Run the promotion gate on labelled data: metric thresholds, non-degenerate "
        "predictions, the card's directional checks, and candidate vs current. "
        "Exit status 0 only when every check passes.",
    )
    gate.add_argument("candidate", metavar="CANDIDATE", help="candidate bundle")
    gate.add_argument("--current", required=True, metavar="BUNDLE", help="bundle serving now")
    labelled = gate.add_mutually_exclusive_group(required=True)
    labelled.add_argument(
        "--data",
        metavar="FILE",
        help="labelled data (.csv or .parquet): features and the target column",
    )
    labelled.add_argument(
        rc.FLAG_GATE_LABELLED_DATA,
        dest="labelled_data",
        metavar="LOCATION",
        help="the labelled-data store (s3://BUCKET/PREFIX or a folder): its held-out rows "
        "(the requests `modeldeploy retrain` did not fit on) in --since .. --until",
    )
    gate.add_argument(
        rc.FLAG_GATE_SINCE, type=parse_time, default=None, metavar="TIME", help="window start"
    )
    gate.add_argument(
        rc.FLAG_GATE_UNTIL, type=parse_time, default=None, metavar="TIME", help="window end"
    )
    gate.add_argument(
        rc.FLAG_GATE_RESULT_FILE,
        dest="result_file",
        default="",
        metavar="PATH",
        help=f"also write the decision as JSON here (a Job: {rc.TERMINATION_LOG})",
    )
    gate.add_argument(
        "--min",
        dest="minimums",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="candidate metric must be at least VALUE (repeatable; e.g. roc_auc=0.7)",
    )
    gate.add_argument(
        "--max-regression",
        type=float,
        default=0.01,
        help="how much worse than current the candidate's metrics may be",
    )
    gate.add_argument(
        "--candidate-sha256",
        default=None,
        metavar="HEX",
        help="the candidate's pinned bundle digest",
    )
    gate.add_argument(
        "--current-sha256",
        default=None,
        metavar="HEX",
        help="the current bundle's pinned digest",
    )
    gate.add_argument(
        "--trust-card",
        action="store_true",
        help="load a bundle whose digest was not given as it is (unpickling runs its code)",
    )
    loop_cli.add_settle_argument(gate)
    add_s3_arguments(gate, "an s3:// labelled-data store")
    gate.set_defaults(run=run_gate)


def run_serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from pathlib import Path

    from modeldeploy.server.bundle import BundleError, read_bundle_files, verify_bytes

    sha = getattr(args, "sha256", None) or os.environ.get(c.ENV_SHA256)
    if not sha:
        log.error("no pinned digest: pass %s HEX or set %s", c.FLAG_SHA256, c.ENV_SHA256)
        return 2
    bundle = Path(args.bundle)
    try:
        files = read_bundle_files(bundle)
        digest = verify_bytes(files.model, files.card, sha, bundle, files.model_file)
    except BundleError as exc:
        log.error("%s", exc)
        return 3
    del files
    log.info("bundle %s: sha256 %s matches the pinned digest", bundle, digest)
    from modeldeploy.server.labelled import LabelledDataError

    try:
        labelled = labelledcli.serve_settings(args)
    except (LabelledDataError, ValueError) as exc:
        log.error("labelled data: %s", exc)
        return 2

    import uvicorn

    from modeldeploy.server.app import create_app
    from modeldeploy.server.onewrite import OneWriteHttpToolsProtocol
    from modeldeploy.server.settings import Settings

    settings = Settings(
        bundle=bundle,
        sha256=sha,
        role=args.role,
        host=args.host,
        port=args.port,
        max_batch_rows=args.max_batch_rows,
        max_batch_wait_ms=args.max_batch_wait_ms,
        max_request_rows=args.max_request_rows,
        drift=args.drift,
        drift_window=args.drift_window,
        feedback_peers=args.feedback_peers,
        labelled=labelled,
    )
    if labelled is not None:
        log.info(
            "labelled data: rows that /feedback labels go to %s (files of %d rows or %gs)",
            labelled.location,
            labelled.rows_per_file,
            labelled.max_age,
        )
    log.info("serving %s on http://%s:%d as %s", bundle, args.host, args.port, args.role)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        http=OneWriteHttpToolsProtocol,  # a response's head and body in one write
        proxy_headers=False,  # nothing reads the client's address: no X-Forwarded-* pass
        log_config=None,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return 0


def run_example_bundle(args: argparse.Namespace) -> int:
    setup_logging()
    import tempfile
    from pathlib import Path

    from modeldeploy.server.bundle import bundle_sha256, pack_bundle
    from modeldeploy.server.examples import build_example

    out = Path(args.out)
    if out.name.endswith(".tar.gz"):
        with tempfile.TemporaryDirectory() as tmp:
            card = build_example(Path(tmp), args.version, args.variant, args.seed)
            pack_bundle(Path(tmp), out)
    else:
        card = build_example(out, args.version, args.variant, args.seed)
    digest = bundle_sha256(out)
    log.info(
        "%s variant %s version %s: accuracy %.3f, roc_auc %.3f",
        card.name,
        args.variant,
        card.version,
        card.metrics["accuracy"],
        card.metrics["roc_auc"],
    )
    print(digest)
    return 0


def run_example_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modeldeploy.server.examples import example_eval_data, write_csv

    x, y = example_eval_data(args.rows, seed=args.seed, shifted=args.shifted)
    write_csv(Path(args.out), x, y)
    print(args.out)
    return 0


def run_gate(args: argparse.Namespace) -> int:
    setup_logging("warning")
    from pathlib import Path

    from modeldeploy.server.bundle import BundleError
    from modeldeploy.server.bundling import SchemaError
    from modeldeploy.server.gate import GateError, parse_minimums, render, run
    from modeldeploy.server.labelled import LabelledDataError
    from modeldeploy.server.loop import gating, result
    from modeldeploy.server.sources.base import FetchError

    try:
        minimums = parse_minimums(args.minimums)
        frame = gating.held_out_window(args) if args.labelled_data else None
        decision = run(
            Path(args.candidate),
            Path(args.current),
            Path(args.data) if args.data else None,
            minimums=minimums,
            max_regression=args.max_regression,
            candidate_sha256=args.candidate_sha256,
            current_sha256=args.current_sha256,
            trust_card=args.trust_card,
            frame=frame,
            target=rc.COLUMN_LABEL,
        )
    except (GateError, BundleError, SchemaError, LabelledDataError, FetchError) as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        result.write(args.result_file, gating.error_answer(str(exc)))
        return 2
    print(render(decision))
    result.write(args.result_file, gating.answer(decision))
    return 0 if decision.promote else 1

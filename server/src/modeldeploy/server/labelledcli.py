"""The labelled-data store on the command line: ``modeldeploy serve``'s flags that turn it on,
and ``modeldeploy labelled-data`` that reads it.

Registered without importing pandas (the operator image builds this parser too); each
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modeldeploy.server.contract import retrain as r
from modeldeploy.server.loop.cli import parse_time
from modeldeploy.server.sources.s3client import add_s3_arguments, s3_flags

if TYPE_CHECKING:  # pragma: no cover
    from modeldeploy.server.settings import LabelledSettings

DESCRIPTION = """\
Read the labelled-data store that `modeldeploy serve --labelled-data LOCATION` writes: every
prediction that /feedback labelled, with its features, prediction, label, model version,
role and times, as Parquet files LOCATION/MODEL/DATE/POD-FIRSTMS-SEQ.parquet.

Prints how many rows and files the window holds, the rows per model version and role, and
the time range; --out writes the rows (.parquet keeps the dtypes, .csv for a quick look).
The window is --since (included) to --until (excluded), ISO 8601 times, UTC when no offset
is given, e.g. --since 2026-12-01T00:00:00Z.

LOCATION is s3://BUCKET/PREFIX (the --s3-* flags and credentials as for `modeldeploy
fetch`: $MODELDEPLOY_S3_ACCESS_KEY_ID, $MODELDEPLOY_S3_SECRET_ACCESS_KEY, optionally
$MODELDEPLOY_S3_SESSION_TOKEN, else unsigned) or a folder.
"""


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    """The flags of ``modeldeploy serve`` for the labelled-data store (off by default)."""
    group = serve.add_argument_group(
        "labelled data (what /feedback labels, kept for retraining and the gate)"
    )
    group.add_argument(
        r.FLAG_LABELLED_DATA,
        dest="labelled_data",
        metavar="LOCATION",
        default=argparse.SUPPRESS,
        help="keep every labelled prediction (features, prediction, label, version, role, "
        "times) as Parquet files under s3://BUCKET/PREFIX or a folder, named after "
        f"${r.ENV_POD_NAME} or the host name; read from ${r.ENV_LABELLED_DATA} when not "
        "given (default: off)",
    )
    group.add_argument(
        "--labelled-rows-per-file",
        type=int,
        default=5000,
        metavar="N",
        help="write a file when N labelled rows wait",
    )
    group.add_argument(
        "--labelled-max-age",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="write a file when the oldest waiting row is this old (and on shutdown)",
    )
    group.add_argument(
        "--labelled-max-pending",
        type=int,
        default=50_000,
        metavar="N",
        help="most rows kept in memory while the store cannot be written (oldest dropped)",
    )
    group.add_argument(
        "--labelled-retention-days",
        type=float,
        default=7.0,
        metavar="DAYS",
        help="delete the model's files older than this",
    )
    add_s3_arguments(serve, f"S3 (for an s3:// {r.FLAG_LABELLED_DATA})")


def serve_settings(args: argparse.Namespace) -> LabelledSettings | None:
    """The labelled-data settings of ``serve``'s arguments (None when off); the location and
    the S3 settings are checked here, so a wrong one stops the server before it starts."""
    from modeldeploy.server.labelled.service import pod_name
    from modeldeploy.server.labelled.sinks import open_sink, s3_settings
    from modeldeploy.server.settings import LabelledSettings

    location = getattr(args, "labelled_data", "") or os.environ.get(r.ENV_LABELLED_DATA, "")
    if not location:
        return None
    s3 = s3_settings(*s3_flags(args))
    open_sink(location, s3)
    return LabelledSettings(
        location=location,
        pod=pod_name(),
        s3=s3,
        rows_per_file=args.labelled_rows_per_file,
        max_age=args.labelled_max_age,
        max_pending=args.labelled_max_pending,
        retention_days=args.labelled_retention_days,
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``labelled-data`` to the ``modeldeploy`` parser."""
    parser = commands.add_parser(
        "labelled-data",
        help="summarise (and export) the labelled-data store the model servers write",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("location", metavar="LOCATION", help="s3://BUCKET/PREFIX or a folder")
    parser.add_argument("--model", default=None, help="the model's name (default: every model)")
    parser.add_argument(
        "--since", type=parse_time, default=None, metavar="ISO", help="window start"
    )
    parser.add_argument("--until", type=parse_time, default=None, metavar="ISO", help="window end")
    parser.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="write the rows to FILE.parquet|.csv"
    )
    add_s3_arguments(parser, "s3:// locations")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from modeldeploy.server.labelled.reader import scan_window
    from modeldeploy.server.labelled.sinks import LabelledDataError, s3_settings

    out: Path | None = args.out
    if out is not None and out.suffix not in (".parquet", ".csv"):
        print("labelled-data: --out must end in .parquet or .csv", file=sys.stderr)
        return 2
    try:
        s3 = s3_settings(*s3_flags(args))
        window = scan_window(
            args.location, since=args.since, until=args.until, model=args.model, s3=s3
        )
    except (LabelledDataError, ValueError) as exc:
        print(f"labelled-data: {exc}", file=sys.stderr)
        return 1
    frame = window.frame
    print(f"rows: {len(frame)}")
    print(f"files: {window.files}")
    if len(frame):
        times = frame[r.COLUMN_TIME]
        print(f"time: {times.min().isoformat()} to {times.max().isoformat()}")
        counts = frame.groupby([r.COLUMN_VERSION, r.COLUMN_ROLE], sort=True).size()
        print("version  role  rows")
        for (version, role), rows in counts.items():
            print(f"{version}  {role}  {rows}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            frame.to_parquet(out, index=False)
        else:
            frame.to_csv(out, index=False)
        print(f"wrote {len(frame)} rows to {out}")
    return 0

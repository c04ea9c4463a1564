"""Reading the labelled-data store: every row of a time window, as one DataFrame.

What the trainer and the gate call (``read_window``) and what ``modeldeploy labelled-data``
prints. Only the DATE folders the window touches are listed and read (a file never crosses a
UTC day), the rows are filtered by ``_md_time`` (``since`` included, ``until`` excluded) and
sorted by it. The dtypes are the files' own (the card's: ``float64``, ``int64``, ``bool``,
``str``); files of model versions with other features are concatenated by column name, a
column a version lacks being missing there.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from modeldeploy.server.contract import retrain as r
from modeldeploy.server.labelled.format import SUFFIX, empty_frame, first_ms_of, is_day, segment
from modeldeploy.server.labelled.sinks import LabelledDataError, Sink, open_sink
from modeldeploy.server.sources.s3client import S3Settings


@dataclass(frozen=True)
class Window:
    """The rows of a window and how many files they came from."""

    frame: pd.DataFrame
    files: int


def _utc(moment: datetime | None) -> pd.Timestamp | None:
    """A datetime as a UTC timestamp; a naive one is taken to be UTC already."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return pd.Timestamp(moment).tz_convert("UTC")


def _day(moment: pd.Timestamp | None, default: str) -> str:
    return default if moment is None else moment.strftime("%Y-%m-%d")


def _read(sink: Sink, key: str) -> pd.DataFrame:
    data = sink.get(key)
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow's errors for a file that is not (whole) Parquet
        raise LabelledDataError(
            f"{sink.where}: {key} is not a readable Parquet file: {exc}"
        ) from None


def scan_window(
    location: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    s3: S3Settings | None = None,
) -> Window:
    """The rows of the window and the number of files read (see ``read_window``)."""
    start, end = _utc(since), _utc(until)
    if start is not None and end is not None and end <= start:
        raise ValueError(
            f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})"
        )
    sink = open_sink(location, s3)
    sink.check()
    first_day, last_day = _day(start, "0000-00-00"), _day(end, "9999-99-99")
    models = [segment(model)] if model else sink.folders("")
    keys: list[str] = []
    for name in models:
        for day in sink.folders(f"{name}/"):
            if is_day(day) and first_day <= day <= last_day:
                keys += [
                    k
                    for k in sink.keys(f"{name}/{day}/")
                    if k.endswith(SUFFIX) and first_ms_of(k) is not None
                ]
    frames = [_read(sink, key) for key in keys]
    frames = [f for f in frames if len(f)]
    if not frames:
        return Window(empty_frame(), len(keys))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    times = frame[r.COLUMN_TIME]
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= times >= start
    if end is not None:
        keep &= times < end
    frame = frame[keep].sort_values(r.COLUMN_TIME, kind="stable").reset_index(drop=True)
    return Window(frame, len(keys))


def read_window(
    location: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    s3: S3Settings | None = None,
) -> pd.DataFrame:
    """Every labelled row stored under ``location`` with ``since <= _md_time < until``.

    ``location`` is ``s3://BUCKET/PREFIX`` (``s3`` gives the endpoint, region, addressing and
    credentials, as for ``modeldeploy fetch``) or a folder; ``model`` the card's name (all
    models when None); naive datetimes are UTC. The reserved ``_md_*`` columns come first,
    then the features, rows sorted by time; no rows gives an empty DataFrame with the
    reserved columns. ``LabelledDataError`` when the location cannot be reached or a file
    cannot be read.
    """
    return scan_window(location, since=since, until=until, model=model, s3=s3).frame

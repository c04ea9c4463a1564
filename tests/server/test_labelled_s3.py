"""The labelled-data store on a real S3-compatible server (versitygw, as ``test_fetch_s3``):
a real ``modeldeploy serve`` writes what ``/feedback`` labels under an s3:// prefix and
``read_window`` reads it back; retention deletes through S3; failures say where and why."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from labelled_client import FEATURES, label, predict, records
from s3server import S3Server, versitygw_with_bucket
from server_process import free_port, start_server
from user_models import churn_frame

from modeldeploy.server.contract import retrain as r
from modeldeploy.server.contract import sources as cs
from modeldeploy.server.labelled import LabelledDataError, S3Settings, read_window
from modeldeploy.server.labelled.format import Labelled, Layout, first_ms_of
from modeldeploy.server.labelled.sinks import open_sink
from modeldeploy.server.labelled.writer import DAY, LabelledWriter, Limits

BUCKET = "labelled"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from versitygw_with_bucket(tmp_path_factory.mktemp("versitygw"), BUCKET)


def settings(s3: S3Server, **env: str) -> S3Settings:
    return S3Settings.from_env(s3.endpoint, environ=s3.env(**env))


def keys(s3: S3Server, prefix: str) -> list[str]:
    answer = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in answer.get("Contents", []))


def test_a_server_writes_labelled_rows_to_s3_and_read_window_reads_them(
    s3: S3Server,
    churn_bundle: tuple[Path, str],
    tmp_path: Path,  # noqa: F811 - the fixture
) -> None:
    bundle, digest = churn_bundle
    location = f"s3://{BUCKET}/stores/churn-prod"
    env = {**s3.env(), r.ENV_POD_NAME: "churn-green-5c8d-q7"}
    server = start_server(
        bundle,
        digest,
        tmp_path / "server.log",
        r.FLAG_LABELLED_DATA,
        location,
        cs.FLAG_S3_ENDPOINT,
        s3.endpoint,
        "--role",
        "candidate",
        env=env,
    )
    sent = {}
    try:
        for seed in (1, 2):
            frame = churn_frame(6, seed=seed)
            request_id, predictions = predict(server, records(frame))
            assert label(server, request_id, frame["churned"].tolist()) == 200
            sent[request_id] = (records(frame), predictions, frame["churned"].tolist())
        predict(server, records(churn_frame(3, seed=3)))  # never labelled
    finally:
        server.stop()
    written = keys(s3, "stores/churn-prod/")
    assert len(written) == 1, server.log()[-2000:]
    assert written[0].startswith("stores/churn-prod/churn/")
    assert written[0].rsplit("/", 1)[1].startswith("churn-green-5c8d-q7-")
    back = read_window(location, model="churn", s3=settings(s3))
    assert len(back) == 12
    for request_id, (rows, predictions, labels) in sent.items():
        got = back[back[r.COLUMN_REQUEST_ID] == request_id]
        assert got[FEATURES].to_dict("records") == rows
        assert got[r.COLUMN_PREDICTION].tolist() == predictions
        assert got[r.COLUMN_LABEL].tolist() == labels
    assert set(back[r.COLUMN_ROLE]) == {"candidate"}
    assert str(back["tickets"].dtype) == "int64" and str(back["plan"].dtype) == "str"
    assert s3.secret_key not in server.log()
    later = read_window(
        location, s3=settings(s3), since=back[r.COLUMN_TIME].max() + timedelta(seconds=1)
    )
    assert len(later) == 0 and list(later.columns) == [*r.RESERVED_COLUMNS, *FEATURES]


def _chunk(at: float, n: int = 3) -> Labelled:
    rows: list[list[Any]] = [["pro", "eu", 10.0 + i, False, i] for i in range(n)]
    return Labelled(f"req-{at:.0f}", rows, ["no"] * n, ["yes"] * n, at, at)


LAYOUT = Layout(tuple(FEATURES), ("str", "str", "float64", "bool", "int64"), "str")


def test_retention_deletes_expired_objects_and_failures_name_the_location(
    s3: S3Server,
) -> None:
    location = f"s3://{BUCKET}/retention"
    now = time.time()

    def writer(pod: str, retention_days: float, s3s: S3Settings) -> LabelledWriter:
        return LabelledWriter(
            open_sink(location, s3s),
            LAYOUT,
            model="churn",
            version="1",
            role="stable",
            pod=pod,
            limits=Limits(retention=retention_days * DAY),
        )

    old = writer("old", 30, settings(s3))
    for days in (10, 8, 3):
        old.add(_chunk(now - days * DAY))
    assert old.rotate() == 3
    assert len(keys(s3, "retention/")) == 3
    fresh = writer("fresh", 7, settings(s3))
    fresh.add(_chunk(now))
    assert fresh.rotate() == 1
    left = keys(s3, "retention/")
    ages = sorted(round((now * 1000 - (first_ms_of(k) or 0)) / (DAY * 1000)) for k in left)
    assert ages == [0, 3], left
    assert len(read_window(location, s3=settings(s3))) == 6

    wrong = writer("denied", 7, settings(s3, **{cs.ENV_S3_SECRET_ACCESS_KEY: "x" * 40}))
    wrong.add(_chunk(now))
    assert wrong.rotate() == 0
    assert wrong.metrics.failures._value.get() == 1 and wrong.pending_rows == 3
    with pytest.raises(LabelledDataError, match="access denied") as denied:
        read_window(location, s3=settings(s3, **{cs.ENV_S3_SECRET_ACCESS_KEY: "x" * 40}))
    assert s3.secret_key not in str(denied.value) and "x" * 40 not in str(denied.value)
    with pytest.raises(LabelledDataError, match="no such bucket 'nothing-here'"):
        read_window("s3://nothing-here/x", s3=settings(s3))
    closed = S3Settings.from_env(f"http://127.0.0.1:{free_port()}", environ=s3.env())
    with pytest.raises(LabelledDataError, match="s3://labelled/retention/"):
        read_window(location, s3=closed)

"""The labelled-data store in a real ``modeldeploy serve`` (uvicorn): what ``/feedback``
labels reaches the folder sink, exactly, at 5000 rows and on shutdown; nothing else does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from labelled_client import FEATURES, label, predict, records, wait_for
from server_process import free_port, start_server
from user_models import churn_frame, fitted_diabetes

from conftest import Built
from modeldeploy.server import contract as c
from modeldeploy.server.bundling import bundle_model
from modeldeploy.server.contract import retrain as r
from modeldeploy.server.labelled import read_window


def test_labelled_predictions_reach_the_folder_exactly_at_5000_rows_and_on_shutdown(
    churn_bundle: tuple[Path, str], tmp_path: Path
) -> None:
    bundle, digest = churn_bundle
    store = tmp_path / "labelled"
    env = {r.ENV_LABELLED_DATA: str(store), r.ENV_POD_NAME: "churn-stable-7d9f-x2"}
    server = start_server(bundle, digest, tmp_path / "server.log", env=env)
    sent: dict[str, tuple[list[dict[str, Any]], list[Any], list[Any]]] = {}
    try:
        for i in range(5):  # 5 x 1000 labelled rows: the default rows per file
            frame = churn_frame(1000, seed=100 + i)
            rows = records(frame)
            request_id, predictions = predict(server, rows)
            labels = frame["churned"].tolist()
            assert label(server, request_id, labels) == 200
            sent[request_id] = (rows, predictions, labels)
        assert wait_for(lambda: list(store.rglob("*.parquet")), 20), server.log()[-2000:]
        metrics = server.metrics()
        assert metrics[(c.METRIC_LABELLED_ROWS_WRITTEN, ())] == 5000
        assert metrics[(c.METRIC_LABELLED_FILES_WRITTEN, ())] == 1
        assert metrics[(c.METRIC_LABELLED_WRITE_FAILURES, ())] == 0
        assert metrics[(c.METRIC_LABELLED_ROWS_DROPPED, ())] == 0
        small = churn_frame(3, seed=9)
        request_id, predictions = predict(server, records(small))
        assert label(server, request_id, small["churned"].tolist()) == 200
        sent[request_id] = (records(small), predictions, small["churned"].tolist())
        unlabelled, _ = predict(server, records(churn_frame(2, seed=10)))
        assert label(server, "d0e5a1f0c0ffee0000000000000000aa", ["yes"]) == 404
        assert label(server, request_id, small["churned"].tolist()) == 404, "labelled once only"
        assert len(list(store.rglob("*.parquet"))) == 1, "3 rows wait for 60 s or shutdown"
    finally:
        server.stop()
    files = sorted(store.rglob("*.parquet"))
    assert len(files) == 2, server.log()[-2000:]
    assert all(p.parent.parent.name == "churn" for p in files)
    assert all(p.name.startswith("churn-stable-7d9f-x2-") for p in files)
    back = read_window(str(store), model="churn")
    assert len(back) == 5003
    assert unlabelled not in set(back[r.COLUMN_REQUEST_ID])
    assert list(back[r.COLUMN_REQUEST_ID].unique()) == list(sent)
    for request_id, (rows, predictions, labels) in sent.items():
        got = back[back[r.COLUMN_REQUEST_ID] == request_id]
        assert got[FEATURES].to_dict("records") == rows
        assert got[r.COLUMN_PREDICTION].tolist() == predictions
        assert got[r.COLUMN_LABEL].tolist() == labels
    assert set(back[r.COLUMN_VERSION]) == {"5"} and set(back[r.COLUMN_ROLE]) == {"stable"}
    assert (back[r.COLUMN_TIME] >= back[r.COLUMN_PREDICTED_AT]).all()
    log = server.log()
    assert "labelled data" in log
    for value in ("enterprise", str(sent[request_id][0][0]["monthly fee"])):
        assert value not in log, "no feature or label ever goes into the log"


def test_without_the_flag_nothing_is_written_and_feedback_works_as_before(
    churn_bundle: tuple[Path, str], tmp_path: Path
) -> None:
    bundle, digest = churn_bundle
    server = start_server(bundle, digest, tmp_path / "server.log", env={}, wait_ready=True)
    try:
        frame = churn_frame(4, seed=3)
        request_id, _ = predict(server, records(frame))
        assert label(server, request_id, frame["churned"].tolist()) == 200
        assert (c.METRIC_LABELLED_ROWS_WRITTEN, ()) not in server.metrics()
    finally:
        server.stop()
    assert not list(tmp_path.rglob("*.parquet"))


def test_an_open_inference_request_on_an_array_regressor_is_stored_as_sent(tmp_path: Path) -> None:
    reg, x, y = fitted_diabetes()
    _, digest = bundle_model(reg, x, y, name="diabetes", version="2", out=tmp_path / "bundle")
    store = tmp_path / "labelled"
    server = start_server(
        tmp_path / "bundle", digest, tmp_path / "server.log", r.FLAG_LABELLED_DATA, str(store)
    )
    try:
        body = {
            "inputs": [
                {"name": "input-0", "datatype": "FP64", "shape": [8, 10], "data": x[:8].tolist()}
            ]
        }
        with server.client() as http:
            answer = http.post("/v2/models/diabetes/infer", json=body)
        assert answer.status_code == 200, answer.text
        request_id = answer.json()["parameters"]["request_id"]
        predicted = answer.json()["outputs"][0]["data"]
        assert label(server, request_id, y[:8].tolist()) == 200
    finally:
        server.stop()
    back = read_window(str(store))
    assert back[r.COLUMN_REQUEST_ID].tolist() == [request_id] * 8
    assert back.iloc[:, 7:].to_numpy().tolist() == x[:8].tolist()
    assert back[r.COLUMN_PREDICTION].tolist() == predicted
    assert back[r.COLUMN_LABEL].tolist() == y[:8].tolist()


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        ([r.FLAG_LABELLED_DATA, "s3://Not_A_Bucket/x"], "bucket name 'Not_A_Bucket'"),
        ([r.FLAG_LABELLED_DATA, "/tmp/x", "--s3-endpoint", "http://127.0.0.1:9"], "not s3://"),
        ([r.FLAG_LABELLED_DATA, "s3://labelled/x", "--s3-endpoint", "127.0.0.1:9"], "must be"),
    ],
)
def test_a_wrong_location_stops_the_server_before_it_serves(
    bundles: dict[str, Built], flags: list[str], problem: str
) -> None:
    good = bundles["good"]
    cmd = [sys.executable, "-m", "modeldeploy", "serve", str(good.path), "--sha256", good.sha256]
    cmd += ["--port", str(free_port()), *flags]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert problem in res.stderr

"""The server over real HTTP: ``modeldeploy serve`` in a uvicorn process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from server_process import Server, burst

from modeldeploy.server.bundle import bundle_sha256, load_bundle, pack_bundle, sha256_bytes
from modeldeploy.server.contract import CARD_FILE, ENV_SHA256, MODEL_FILE
from modeldeploy.server.examples import as_records, generate_traffic

JSON = {"content-type": "application/json"}
NAME = "incident-predictor"


@pytest.fixture(scope="module")
def local_model(bundles: dict[str, Any]) -> Any:
    """The same bundle loaded in the test process, to check the server's answers."""
    return load_bundle(bundles["good"].path, bundles["good"].sha256).model


def total(samples: dict[Any, float], name: str, **match: str) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and all((k, w) in labels for k, w in match.items())
    )


def test_health_metadata_card_and_identity_headers(
    good_server: Server, bundles: dict[str, Any]
) -> None:
    with good_server.client() as http:
        live = http.get("/v2/health/live")
        ready = http.get("/v2/health/ready")
        assert live.json()["live"] is True and ready.json()["ready"] is True
        meta = http.get(f"/v2/models/{NAME}").json()
        assert meta["name"] == NAME and meta["versions"] == ["1.0.0-good"]
        assert [f["name"] for f in meta["parameters"]["features"]][:2] == [
            "request_rate",
            "error_pct",
        ]
        assert meta["parameters"]["sha256"] == bundles["good"].sha256
        missing = http.get("/v2/models/other-model")
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "model"
        card = http.get("/model-card").json()
        assert card["sha256"] == bundles["good"].sha256
        assert card["card"]["reference_size"] == 2000
        for path in ("/v2/health/live", "/metrics", "/drift", "/model-card", "/nope"):
            r = http.get(path, headers={"x-request-id": "trace-123"})
            assert r.headers["x-model-name"] == NAME, path
            assert r.headers["x-model-version"] == "1.0.0-good", path
            # The request id is always the server's; the client's comes back beside it.
            assert re.fullmatch("[0-9a-f]{32}", r.headers["x-request-id"]), path
            assert r.headers["x-client-request-id"] == "trace-123", path
        assert http.get("/nope").status_code == 404
        assert http.get("/predict").status_code == 405
        assert (
            http.get("/v2/health/live").headers["x-request-id"]
            != http.get("/v2/health/live").headers["x-request-id"]
        )


def test_predict_and_infer_answer_what_the_model_says(
    good_server: Server, local_model: Any
) -> None:
    x = generate_traffic(7, seed=21)
    expected = local_model.predict_proba(x)
    with good_server.client() as http:
        r = http.post(
            "/predict", json={"instances": as_records(x)}, headers={"x-request-id": "abc-1"}
        )
        assert r.status_code == 200
        body = r.json()
        assert (body["model_name"], body["model_version"]) == (NAME, "1.0.0-good")
        assert body["request_id"] == r.headers["x-request-id"] != "abc-1"
        assert r.headers["x-client-request-id"] == "abc-1"
        assert np.allclose(body["probabilities"], expected, rtol=0, atol=1e-12)
        assert body["predictions"] == expected.argmax(axis=1).tolist()
        assert body["classes"] == [0, 1]
        # A KServe V2 client's request: one FP32 tensor of shape [rows, features], nested data.
        v2 = {
            "id": "req-9",
            "inputs": [
                {"name": "input-0", "shape": [7, 5], "datatype": "FP64", "data": x.tolist()}
            ],
        }
        r = http.post(f"/v2/models/{NAME}/infer", json=v2)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["model_name"] == NAME and out["id"] == "req-9"
        tensors = {t["name"]: t for t in out["outputs"]}
        assert tensors["predict_proba"]["shape"] == [7, 2]
        assert np.allclose(
            np.reshape(tensors["predict_proba"]["data"], (7, 2)), expected, rtol=0, atol=1e-12
        )
        assert tensors["predict"]["data"] == body["predictions"]
        per_feature = {
            "inputs": [
                {"name": n, "shape": [7], "datatype": "FP64", "data": x[:, j].tolist()}
                for j, n in enumerate(
                    ["request_rate", "error_pct", "p99_latency_ms", "deploy_hour", "is_weekend"]
                )
            ],
            "outputs": [{"name": "predict"}],
        }
        r = http.post(f"/v2/models/{NAME}/versions/1.0.0-good/infer", json=per_feature)
        assert [t["name"] for t in r.json()["outputs"]] == ["predict"]
        assert r.json()["outputs"][0]["data"] == body["predictions"]
        assert http.post("/v2/models/other/infer", json=v2).status_code == 404


BAD_REQUESTS: list[tuple[dict[str, str], bytes, int, str]] = [
    (JSON, b"{not json", 400, "body"),
    (JSON, b"", 400, "body"),
    (JSON, b'{"instances": [{"request_rate": NaN}]}', 400, "body"),
    ({"content-type": "text/plain"}, b'{"instances": []}', 415, "content-type"),
    ({}, b'{"instances": []}', 415, "content-type"),
    (JSON, b'{"instances": []}', 422, "instances"),
    (JSON, json.dumps({"instances": [{"request_rate": 1}] * 1025}).encode(), 413, "instances"),
    (
        JSON,
        b'{"instances": [{"request_rate": 1, "error_pct": 1, "p99_latency_ms": 1, '
        b'"deploy_hour": 1}]}',
        422,
        "instances[0].is_weekend",
    ),
    (
        JSON,
        b'{"instances": [{"request_rate": 1, "error_pct": 1, "p99_latency_ms": 1, '
        b'"deploy_hour": 1, "is_weekend": 7}]}',
        422,
        "instances[0].is_weekend",
    ),
    (JSON, b" " * (4 * 1024 * 1024 + 10), 413, "body"),
]


def test_bad_requests_get_a_4xx_naming_field_and_problem(good_server: Server) -> None:
    with good_server.client() as http:
        for headers, body, status, field in BAD_REQUESTS:
            r = http.post("/predict", content=body, headers=headers)
            assert r.status_code == status, (body[:80], r.text)
            err = r.json()
            assert err["error"]["field"] == field and err["error"]["problem"]
            assert err["model_name"] == NAME and err["request_id"] == r.headers["x-request-id"]
        r = http.post(
            f"/v2/models/{NAME}/infer",
            json={
                "inputs": [{"name": "x", "shape": [1, 5], "datatype": "BYTES", "data": ["a"] * 5}]
            },
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "inputs[0].datatype"


def test_no_input_makes_it_answer_5xx_or_die(good_server: Server) -> None:
    rng = np.random.default_rng(1)
    bodies = [
        b"[]",
        b"null",
        b"1e999",
        b'{"instances": [[]]}',
        b'{"instances": [{}]}',
        b'"\\ud800"',
        b'{"instances": [{"request_rate": 1e400}]}',
        b"\xff\xfe",
        b'{"inputs": [{"shape": [1e9]}]}',
        b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ]
    bodies += [
        bytes(rng.integers(0, 256, rng.integers(1, 200)).astype(np.uint8)) for _ in range(60)
    ]
    with good_server.client() as http:
        for path in ("/predict", f"/v2/models/{NAME}/infer", "/feedback"):
            for body in bodies:
                r = http.post(path, content=body, headers=JSON)
                assert 400 <= r.status_code < 500, (path, body[:40], r.status_code)
        assert http.get("/v2/health/ready").status_code == 200
    assert good_server.process.poll() is None


def test_concurrent_requests_are_predicted_in_batches(
    good_server: Server, local_model: Any
) -> None:
    x = generate_traffic(240, seed=31)
    records = as_records(x)
    expected = local_model.predict_proba(x)[:, 1]
    before = good_server.metrics()
    bodies = [orjson.dumps({"instances": [r]}) for r in records]
    answers = asyncio.run(burst(good_server.url, bodies, connections=48))
    assert [status for status, _ in answers] == [200] * len(records)
    got = np.array([orjson.loads(body)["probabilities"][0][1] for _, body in answers])
    assert np.allclose(got, expected, rtol=0, atol=1e-12)
    after = good_server.metrics()
    calls = total(after, "modeldeploy_batch_rows_count") - total(
        before, "modeldeploy_batch_rows_count"
    )
    rows = total(after, "modeldeploy_batch_rows_sum") - total(before, "modeldeploy_batch_rows_sum")
    assert rows == len(records)
    assert calls < len(records) / 2, f"{calls} model calls for {len(records)} concurrent requests"
    singles = total(after, "modeldeploy_batch_rows_bucket", le="1") - total(
        before, "modeldeploy_batch_rows_bucket", le="1"
    )
    assert singles < calls


def test_metrics_add_up(good_server: Server) -> None:
    x = generate_traffic(60, seed=41)
    before = good_server.metrics()
    returned: list[float] = []
    classes: list[int] = []
    with good_server.client() as http:
        for start in range(0, 60, 6):
            r = http.post("/predict", json={"instances": as_records(x[start : start + 6])})
            returned += [p[1] for p in r.json()["probabilities"]]
            classes += r.json()["predictions"]
        for _ in range(4):
            assert (
                http.post("/predict", json={"instances": [{"error_pct": "high"}]}).status_code
                == 422
            )
    after = good_server.metrics()

    def delta(name: str, **match: str) -> float:
        return total(after, name, **match) - total(before, name, **match)

    assert delta("modeldeploy_requests_total", outcome="ok") == 10
    assert delta("modeldeploy_requests_total", outcome="client_error") == 4
    assert delta("modeldeploy_requests_total", outcome="server_error") == 0
    assert delta("modeldeploy_request_duration_seconds_count") == 14
    assert delta("modeldeploy_request_duration_seconds_bucket", le="+Inf") == 14
    assert delta("modeldeploy_predictions_total") == 60
    assert delta("modeldeploy_prediction_sum_total") == pytest.approx(sum(returned), rel=1e-9)
    assert delta("modeldeploy_prediction_sum_squares_total") == pytest.approx(
        sum(p * p for p in returned), rel=1e-9
    )
    assert delta("modeldeploy_prediction_class_total", **{"class": "1"}) == sum(classes)
    assert delta("modeldeploy_prediction_class_total", **{"class": "0"}) == 60 - sum(classes)
    for feature in ("request_rate", "error_pct", "p99_latency_ms", "deploy_hour", "is_weekend"):
        assert delta("modeldeploy_feature_bin_total", feature=feature) == 60, feature
    assert total(
        after, "modeldeploy_feature_reference_fraction", feature="error_pct"
    ) == pytest.approx(1.0)


def test_feedback_scores_earlier_predictions(good_server: Server) -> None:
    x = generate_traffic(5, seed=51)
    before = good_server.metrics()
    with good_server.client() as http:
        answer = http.post("/predict", json={"instances": as_records(x)}).json()
        rid, predicted = answer["request_id"], answer["predictions"]
        labels = [1 - predicted[0]] + predicted[1:]
        short = http.post("/feedback", json={"request_id": rid, "labels": labels[:2]})
        assert short.status_code == 422 and short.json()["error"]["field"] == "labels"
        r = http.post("/feedback", json={"request_id": rid, "labels": labels})
        assert r.status_code == 200, r.text
        assert (r.json()["correct"], r.json()["incorrect"]) == (4, 1)
        again = http.post("/feedback", json={"request_id": rid, "labels": labels})
        assert again.status_code == 404 and again.json()["error"]["field"] == "request_id"
        assert (
            http.post("/feedback", json={"request_id": "never-seen", "label": 1}).status_code == 404
        )
        assert http.post("/feedback", json={"request_id": rid, "label": 3}).status_code == 422
    after = good_server.metrics()
    assert (
        total(after, "modeldeploy_feedback_total", outcome="correct")
        - total(before, "modeldeploy_feedback_total", outcome="correct")
        == 4
    )
    assert (
        total(after, "modeldeploy_feedback_total", outcome="incorrect")
        - total(before, "modeldeploy_feedback_total", outcome="incorrect")
        == 1
    )
    err = total(after, "modeldeploy_feedback_abs_error_sum_total") - total(
        before, "modeldeploy_feedback_abs_error_sum_total"
    )
    p1 = [p[1] for p in answer["probabilities"]]
    assert err == pytest.approx(sum(abs(y - p) for y, p in zip(labels, p1, strict=True)), rel=1e-9)


def test_drift_report_sees_shifted_traffic(
    serve: Callable[..., Server], bundles: dict[str, Any]
) -> None:
    server = serve(bundles["good"], "--drift-window", "400")
    with server.client() as http:
        assert http.get("/drift").json()["verdict"] == "insufficient_data"
        normal = as_records(generate_traffic(400, seed=61))
        for start in range(0, 400, 50):
            assert (
                http.post("/predict", json={"instances": normal[start : start + 50]}).status_code
                == 200
            )
        report = http.get("/drift").json()
        assert report["verdict"] == "no_drift", report
        assert report["window"] == {"rows": 400, "capacity": 400}
        assert report["model_name"] == NAME
        shifted = as_records(generate_traffic(400, seed=62, shifted=True))
        for start in range(0, 400, 50):
            http.post("/predict", json={"instances": shifted[start : start + 50]})
        report = http.get("/drift").json()
    assert report["verdict"] == "drift" and report["drift"] is True
    by_name = {f["feature"]: f for f in report["features"]}
    for name in ("request_rate", "error_pct", "p99_latency_ms"):
        assert by_name[name]["drift"] is True
        assert by_name[name]["test"] == "ks"
        assert by_name[name]["psi"] > 0.25
        assert by_name[name]["p_value"] < report["corrected_alpha"]
    assert by_name["is_weekend"]["test"] == "chi_square"
    assert report["predictions"]["live_mean"] > report["predictions"]["reference_mean"]


def test_a_wrong_digest_is_one_error_line_and_a_failed_exit(bundles: dict[str, Any]) -> None:
    wrong = bundles["drifted"].sha256
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy",
            "serve",
            str(bundles["good"].path),
            "--sha256",
            wrong,
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "refusing to load" in errors[0] and wrong in errors[0]
    assert "Traceback" not in done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "modeldeploy", "serve", str(bundles["good"].path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != ENV_SHA256},
    )
    assert missing.returncode == 2 and ENV_SHA256 in missing.stderr


def test_archive_digest_from_env_candidate_role_and_drift_off(
    serve: Callable[..., Server], bundles: dict[str, Any], tmp_path: Path
) -> None:
    archive = pack_bundle(bundles["diverging"].path, tmp_path / "diverging.tar.gz")
    built = type(bundles["diverging"])(archive, bundles["diverging"].sha256)
    server = serve(
        built, "--role", "candidate", "--no-drift", sha=None, env={ENV_SHA256: built.sha256}
    )
    with server.client() as http:
        assert (
            http.post(
                "/predict", json={"instances": as_records(generate_traffic(3, seed=1))}
            ).status_code
            == 200
        )
        assert http.get("/drift").json()["verdict"] == "disabled"
        text = http.get("/metrics").text
    assert (
        f'modeldeploy_model_info{{model="{NAME}",role="candidate",sha256="{built.sha256}",'
        f'version="1.0.0-diverging"}} 1.0' in text
    )
    samples = server.metrics()
    assert total(samples, "modeldeploy_predictions_total") == 3
    assert total(samples, "modeldeploy_feature_bin_total") == 0
    assert "sha256 " + built.sha256 + " matches" in server.log()


def test_not_ready_until_a_model_is_loaded(
    serve: Callable[..., Server], bundles: dict[str, Any], tmp_path: Path
) -> None:
    """A model file that matches its digest but is not a model: live, never ready, no
    predictions."""
    folder = tmp_path / "broken"
    folder.mkdir()
    junk = b"definitely not a pickle"
    (folder / MODEL_FILE).write_bytes(junk)
    card = json.loads((bundles["good"].path / CARD_FILE).read_text())
    card["sha256"] = sha256_bytes(junk)
    (folder / CARD_FILE).write_text(json.dumps(card))
    server = serve(type(bundles["good"])(folder, bundle_sha256(folder)), wait_ready=False)
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=server.url, timeout=5.0) as http:
        while True:
            try:
                live = http.get("/v2/health/live")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.1)
        assert live.status_code == 200
        while "failed to load" not in http.get("/v2/health/ready").text:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        ready = http.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        r = http.post("/predict", json={"instances": as_records(generate_traffic(1, seed=1))})
        assert r.status_code == 503 and "failed to load" in r.json()["error"]["problem"]
    assert "could not be loaded" in server.log()

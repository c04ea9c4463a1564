"""Users' own models served by a real uvicorn: answers, V2 tensors, refusals, drift, metrics."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from server_process import Server, start_server
from user_models import churn_frame, fitted_churn, fitted_diabetes, fitted_iris

from modeldeploy.server.bundling import bundle_model

FEATURES = ["plan", "region", "monthly fee", "has_support", "tickets"]


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them (plain str, bool, int and float)."""
    return [
        {
            "plan": str(r["plan"]),
            "region": str(r["region"]),
            "monthly fee": float(r["monthly fee"]),
            "has_support": bool(r["has_support"]),
            "tickets": int(r["tickets"]),
        }
        for _, r in frame.iterrows()
    ]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("byom")
    churn, frame = fitted_churn()
    iris, iris_frame = fitted_iris()
    reg, x, y = fitted_diabetes()
    built = {
        "churn": bundle_model(
            churn,
            frame,
            "churned",
            name="churn",
            version="1",
            out=root / "churn",
            card={"allowUnseen": ["region"]},
        ),
        "iris": bundle_model(
            iris, iris_frame, "species", name="iris", version="1", out=root / "iris.tar.gz"
        ),
        "diabetes": bundle_model(reg, x, y, name="diabetes", version="1", out=root / "diabetes"),
    }
    paths = {"churn": root / "churn", "iris": root / "iris.tar.gz", "diabetes": root / "diabetes"}
    servers = {
        k: start_server(paths[k], digest, root / f"{k}.log", "--max-batch-wait-ms", "5")
        for k, (_, digest) in built.items()
    }
    yield {
        "servers": servers,
        "churn": (churn, frame),
        "iris": (iris, iris_frame),
        "diabetes": (reg, x, y),
    }
    for server in servers.values():
        server.stop()


def post(server: Server, path: str, body: Any) -> tuple[int, Any]:
    with server.client() as http:
        r = http.post(path, json=body)
        return r.status_code, r.json()


def test_dataframe_pipeline_answers_equal_its_own_predictions(models: dict[str, Any]) -> None:
    server = models["servers"]["churn"]
    model, _ = models["churn"]
    rows = churn_frame(40, seed=7)[FEATURES]
    status, answer = post(server, "/predict", {"instances": records(rows)})
    assert status == 200, answer
    assert answer["predictions"] == model.predict(rows).tolist()
    assert answer["classes"] == ["no", "yes"]
    np.testing.assert_allclose(answer["probabilities"], model.predict_proba(rows), rtol=1e-12)
    # The same rows as one V2 tensor per column, with the datatypes KServe clients send.
    types = {
        "plan": "BYTES",
        "region": "BYTES",
        "monthly fee": "FP32",
        "has_support": "BOOL",
        "tickets": "INT64",
    }
    inputs = [
        {
            "name": n,
            "datatype": types[n],
            "shape": [len(rows)],
            "data": [r[n] for r in records(rows)],
        }
        for n in reversed(FEATURES)
    ]
    status, answer = post(server, "/v2/models/churn/infer", {"inputs": inputs})
    assert status == 200, answer
    out = {t["name"]: t for t in answer["outputs"]}
    assert out["predict"]["datatype"] == "BYTES"
    assert out["predict"]["data"] == model.predict(rows).tolist()
    np.testing.assert_allclose(
        np.asarray(out["predict_proba"]["data"]).reshape(-1, 2), model.predict_proba(rows)
    )
    with server.client() as http:
        meta = http.get("/v2/models/churn").json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        (n, {"FP32": "FP64"}.get(types[n], types[n])) for n in FEATURES
    ]
    assert meta["outputs"][0]["datatype"] == "BYTES"


def test_unseen_categories_and_missing_columns_are_4xx_naming_them(
    models: dict[str, Any],
) -> None:
    server = models["servers"]["churn"]
    row = records(churn_frame(1, seed=3)[FEATURES])[0]
    status, answer = post(server, "/predict", {"instances": [{**row, "plan": "platinum"}]})
    assert status == 422
    assert answer["error"]["field"] == "instances[0].plan"
    assert "'platinum'" in answer["error"]["problem"] and "'plan'" in answer["error"]["problem"]
    status, answer = post(server, "/predict", {"instances": [{**row, "has_support": 1}]})
    assert status == 422 and "true or false" in answer["error"]["problem"]
    partial = {k: v for k, v in row.items() if k not in ("plan", "tickets")}
    status, answer = post(server, "/predict", {"instances": [partial]})
    assert status == 422 and "'plan', 'tickets'" in answer["error"]["problem"]
    tensor = {"name": "plan", "datatype": "BYTES", "shape": [1], "data": ["gold"]}
    status, answer = post(server, "/v2/models/churn/infer", {"inputs": [tensor]})
    assert status == 422 and "'region'" in answer["error"]["problem"]
    status, answer = post(
        server,
        "/v2/models/churn/infer",
        {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 5], "data": [0] * 5}]},
    )
    assert status == 422 and "one tensor per feature" in answer["error"]["problem"]
    # region allows unseen values: served, and counted in its unseen bin.
    before = server.metrics()
    key = ("modeldeploy_feature_bin_total", (("bin", "__unseen__"), ("feature", "region")))
    status, answer = post(server, "/predict", {"instances": [{**row, "region": "mars"}] * 3})
    assert status == 200, answer
    assert server.metrics()[key] == before[key] + 3


def test_drift_on_a_categorical_column_shows_on_drift_and_in_metrics(
    models: dict[str, Any],
) -> None:
    server = models["servers"]["churn"]
    shifted = churn_frame(400, seed=11, plan_p=(0.05, 0.05, 0.9))[FEATURES]
    status, _ = post(server, "/predict", {"instances": records(shifted)})
    assert status == 200
    with server.client() as http:
        report = http.get("/drift").json()
    plan = next(f for f in report["features"] if f["feature"] == "plan")
    assert plan["test"] == "chi_square" and plan["drift"] is True
    assert "plan" in report["drifted_features"]
    fee = next(f for f in report["features"] if f["feature"] == "monthly fee")
    assert fee["drift"] is False and fee["test"] == "ks"
    # The three unseen regions of the test before are in the window: a new category drifts.
    region = next(f for f in report["features"] if f["feature"] == "region")
    assert region["unseen"] == 3 and region["drift"] is True
    metrics = server.metrics()
    live = {
        dict(labels)["bin"]: value
        for (name, labels), value in metrics.items()
        if name == "modeldeploy_feature_bin_total" and dict(labels)["feature"] == "plan"
    }
    assert set(live) == {"enterprise", "free", "pro", "__unseen__"}
    assert live["enterprise"] > live["free"] + live["pro"]


def test_feedback_with_string_labels_and_class_counts(models: dict[str, Any]) -> None:
    server = models["servers"]["iris"]
    model, frame = models["iris"]
    rows = frame.drop(columns="species").iloc[::10]
    instances = [{k: float(v) for k, v in r.items()} for _, r in rows.iterrows()]
    before = server.metrics()
    with server.client() as http:
        r = http.post("/predict", json={"instances": instances})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == model.predict(rows).tolist()
        labels = frame["species"].iloc[::10].tolist()
        fb = http.post(
            "/feedback", json={"request_id": r.headers["x-request-id"], "labels": labels}
        )
        assert fb.status_code == 200 and fb.json()["accepted"] == len(labels)
        bad = http.post("/feedback", json={"request_id": "x", "label": 1})
        assert bad.status_code == 422 and "class name" in bad.json()["error"]["problem"]
        matrix = {
            "name": "x",
            "datatype": "FP64",
            "shape": [len(rows), 4],
            "data": rows.to_numpy().tolist(),
        }
        v2 = http.post("/v2/models/iris/infer", json={"inputs": [matrix]}).json()
    assert v2["outputs"][0]["datatype"] == "BYTES"
    assert v2["outputs"][0]["data"] == model.predict(rows).tolist()
    after = server.metrics()
    predicted = model.predict(rows).tolist()
    for cls in ("setosa", "versicolor", "virginica"):
        key = ("modeldeploy_prediction_class_total", (("class", cls),))
        assert after[key] - before.get(key, 0) == 2 * predicted.count(cls)
        ref = after[("modeldeploy_prediction_class_reference_fraction", (("class", cls),))]
        assert 0.2 < ref < 0.5
    right = sum(p == y for p, y in zip(predicted, labels, strict=True))
    assert after[("modeldeploy_feedback_total", (("outcome", "correct"),))] == right


def test_regression_on_an_array_model_and_live_error(models: dict[str, Any]) -> None:
    server = models["servers"]["diabetes"]
    model, x, y = models["diabetes"]
    rows = x[:25]
    instances = [{f"x{j}": float(v) for j, v in enumerate(row)} for row in rows]
    with server.client() as http:
        r = http.post("/predict", json={"instances": instances})
        assert r.status_code == 200
        np.testing.assert_allclose(r.json()["predictions"], model.predict(rows), rtol=1e-12)
        fb = http.post(
            "/feedback", json={"request_id": r.headers["x-request-id"], "labels": y[:25].tolist()}
        )
        assert fb.status_code == 200
    m = server.metrics()
    errors = y[:25] - model.predict(rows)
    rows_fb = m[("modeldeploy_feedback_rows_total", ())]
    assert rows_fb == 25
    assert m[("modeldeploy_feedback_abs_error_sum_total", ())] / rows_fb == pytest.approx(
        float(np.abs(errors).mean())
    )
    assert math.sqrt(m[("modeldeploy_feedback_squared_error_sum_total", ())] / rows_fb) == (
        pytest.approx(float(np.sqrt((errors**2).mean())))
    )
    assert m[("modeldeploy_prediction_sum_total", ())] == pytest.approx(
        float(model.predict(rows).sum())
    )


def test_an_oversized_body_gets_its_413_even_from_urllib(models: dict[str, Any]) -> None:
    """urllib sends the whole body before it reads: without draining it gets a reset."""
    server = models["servers"]["diabetes"]
    body = json.dumps({"instances": [{"x0": 0.0, "pad": "x" * 1000}] * 21_000}).encode()
    assert len(body) > 20 * 1024 * 1024
    request = urllib.request.Request(
        server.url + "/predict", data=body, headers={"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 413
    assert json.loads(caught.value.read())["error"]["field"] == "body"
    with server.client() as http:  # and the server goes on serving
        assert http.get("/v2/health/ready").status_code == 200


def test_model_card_as_markdown(models: dict[str, Any], tmp_path: Path) -> None:
    with models["servers"]["churn"].client() as http:
        r = http.get("/model-card", params={"format": "markdown"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    assert r.text.startswith("# Model card: churn 1") and "## Input schema" in r.text

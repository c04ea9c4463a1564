"""The compiled model call: bit for bit what the model's own ``predict_proba`` gives, used
only for the shapes it mirrors, and served over a real uvicorn with the same answers."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
from server_process import start_server
from user_models import churn_frame, fitted_churn, fitted_iris

from modeldeploy.server.bundle import load_bundle
from modeldeploy.server.bundling import bundle_model
from modeldeploy.server.compiled import compiled_proba
from modeldeploy.server.examples import build_pipeline, generate_traffic, incident_labels
from modeldeploy.server.monitor import Monitor
from modeldeploy.server.runtime import ModelRuntime

NUMBERS = ["monthly fee", "tickets"]


def frame_model(handle_unknown: str = "ignore", classes: int = 2) -> tuple[Any, Any]:
    """The churn data through a ColumnTransformer that drops what it does not name."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = churn_frame(1200, seed=2)
    target = frame["churned"] if classes == 2 else frame["plan"]
    features = frame.drop(columns=["churned"] + ([] if classes == 2 else ["plan"]))
    strings = ["plan", "region"] if classes == 2 else ["region"]
    pre = ColumnTransformer(
        [
            ("strings", OneHotEncoder(handle_unknown=handle_unknown), strings),
            ("numbers", StandardScaler(), NUMBERS),
        ]
    )
    model = Pipeline([("pre", pre), ("model", GradientBoostingClassifier(n_estimators=30))])
    return model.fit(features, target), features


def same(ours: Any, theirs: Any) -> bool:
    return bool(ours.shape == theirs.shape and np.array_equal(ours, theirs))


def test_the_example_shape_is_compiled_and_bit_for_bit_the_models_own() -> None:
    x = generate_traffic(3000, seed=1)
    model = build_pipeline(0).fit(x, incident_labels(x))
    call = compiled_proba(model, generate_traffic(64, seed=2))
    assert call is not None
    for rows in (1, 3, 16, 64, 3000):
        block = np.ascontiguousarray(generate_traffic(rows, seed=rows))
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            assert same(call(block), model.predict_proba(block))
        assert same(call(block), model.predict_proba(block))


@pytest.mark.parametrize("classes", [2, 3])
def test_a_column_transformer_pipeline_is_compiled_and_bit_for_bit(classes: int) -> None:
    model, features = frame_model(classes=classes)
    call = compiled_proba(model, features.iloc[:50])
    assert call is not None
    rows = features.iloc[100:900]
    assert same(call(rows), model.predict_proba(rows))
    assert same(call(rows.iloc[:1]), model.predict_proba(rows.iloc[:1]))


def test_an_unknown_category_is_the_models_own_answer() -> None:
    ignoring, features = frame_model("ignore")
    call = compiled_proba(ignoring, features.iloc[:50])
    assert call is not None
    odd = features.iloc[:4].copy()
    odd["region"] = ["mars", "eu", "mars", "us"]
    assert same(call(odd), ignoring.predict_proba(odd))  # all-zero one-hot, as sklearn does

    refusing, features = frame_model("error")
    call = compiled_proba(refusing, features.iloc[:50])
    assert call is not None
    with pytest.raises(ValueError) as theirs:
        refusing.predict_proba(odd)
    with pytest.raises(ValueError) as ours:
        call(odd)
    assert str(ours.value) == str(theirs.value)


def test_shapes_it_does_not_mirror_keep_the_plain_call() -> None:
    churn, frame = fitted_churn()  # remainder="passthrough": not mirrored
    assert compiled_proba(churn, frame.drop(columns="churned").iloc[:20]) is None
    iris, iris_frame = fitted_iris()  # a random forest
    assert compiled_proba(iris, iris_frame.drop(columns="species").iloc[:20]) is None
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    x = generate_traffic(500, seed=3)
    y = incident_labels(x)
    initialised = GradientBoostingClassifier(n_estimators=5, init=LogisticRegression()).fit(x, y)
    assert compiled_proba(initialised, x[:20]) is None  # the initial raw score varies by row


def test_the_runtime_uses_the_compiled_call_for_a_dataframe_bundle(tmp_path: Path) -> None:
    model, features = frame_model()
    data = features.assign(churned=churn_frame(1200, seed=2)["churned"])
    _, digest = bundle_model(model, data, "churned", name="frame", version="1", out=tmp_path / "b")
    bundle = load_bundle(tmp_path / "b", digest)
    runtime = ModelRuntime(bundle, Monitor(bundle.card, "stable"))
    assert runtime._proba is not None
    rows = features.iloc[:40]
    batch = runtime.encoder.build([rows.to_numpy(dtype=object).tolist()])
    result = runtime.predict(batch)
    assert same(result.proba, model.predict_proba(rows))


def test_served_answers_through_the_compiled_call_equal_the_models_own(tmp_path: Path) -> None:
    model, features = frame_model()
    data = features.assign(churned=churn_frame(1200, seed=2)["churned"])
    _, digest = bundle_model(model, data, "churned", name="frame", version="1", out=tmp_path / "b")
    rows = features.iloc[:30]
    server = start_server(tmp_path / "b", digest, tmp_path / "server.log")
    try:
        for i in range(len(rows)):
            record = {k: (v.item() if hasattr(v, "item") else v) for k, v in rows.iloc[i].items()}
            request = urllib.request.Request(
                server.url + "/predict",
                data=json.dumps({"instances": [record]}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = json.loads(answer.read())
            expected = model.predict_proba(rows.iloc[i : i + 1])
            assert body["probabilities"] == expected.tolist()
            assert body["predictions"] == [model.classes_[expected.argmax()]]
    finally:
        server.stop()

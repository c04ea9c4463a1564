"""Validation of a schema with strings and booleans: junk is a 4xx, what passes predicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import sklearn
from user_models import fitted_churn

from modeldeploy.server.bundle import load_bundle
from modeldeploy.server.bundling import bundle_model
from modeldeploy.server.frame import Encoder
from modeldeploy.server.validation import InputSchema
from modeldeploy.server.wire import RequestError

ROW = {"plan": "pro", "region": "eu", "monthly fee": 30.5, "has_support": True, "tickets": 2}


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, InputSchema, Encoder]:
    model, frame = fitted_churn()
    out = tmp_path_factory.mktemp("churn") / "b"
    _, digest = bundle_model(
        model, frame, "churned", name="c", version="1", out=out, card={"allowUnseen": ["region"]}
    )
    bundle = load_bundle(Path(out), digest)
    card = bundle.card
    return bundle.model, InputSchema.from_card(card, 64), Encoder(card.features, "dataframe")


def test_junk_is_a_request_error_and_what_passes_predicts(
    churn: tuple[Any, InputSchema, Encoder],
) -> None:
    model, schema, encoder = churn
    rng = np.random.default_rng(1)
    atoms: list[Any] = [
        None,
        True,
        False,
        0,
        2,
        -1,
        1.5,
        1e308,
        "pro",
        "free",
        "eu",
        "mars",
        "",
        "x" * 300,
        [],
        {},
        ["pro"],
        {"a": 1},
        2**63 - 1,
    ]
    names = list(ROW)
    accepted = 0
    for i in range(3000):
        if i % 3 == 0:
            payload: Any = {"instances": [dict(ROW) for _ in range(rng.integers(1, 3))]}
            payload["instances"][0][names[rng.integers(0, 5)]] = atoms[rng.integers(0, len(atoms))]
        elif i % 3 == 1:
            types = {
                "plan": "BYTES",
                "region": "BYTES",
                "monthly fee": "FP64",
                "has_support": "BOOL",
                "tickets": "INT64",
            }
            inputs = [
                {"name": n, "datatype": types[n], "shape": [1], "data": [ROW[n]]} for n in names
            ]
            victim = inputs[rng.integers(0, 5)]
            key = ["datatype", "data", "shape", "name"][rng.integers(0, 4)]
            victim[key] = (
                [atoms[rng.integers(0, len(atoms))]]
                if key == "data"
                else atoms[rng.integers(0, len(atoms))]
            )
            payload = {"inputs": inputs}
        else:
            payload = {"instances": [{n: atoms[rng.integers(0, len(atoms))] for n in names}]}
        payload = orjson.loads(orjson.dumps(payload))
        parse = schema.rows_from_predict if "instances" in payload else schema.rows_from_infer
        try:
            rows = parse(payload)
        except RequestError as exc:
            assert 400 <= exc.status < 500 and exc.problem
            continue
        block = rows[0] if isinstance(rows, tuple) else rows
        batch = encoder.build([block])
        # As the server calls it (runtime.ModelRuntime): inputs were validated.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            proba = model.predict_proba(batch.model_input)
        assert np.isfinite(proba).all() and np.isfinite(batch.codes).all()
        accepted += 1
    assert accepted > 100

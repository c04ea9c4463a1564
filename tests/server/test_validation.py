"""Request validation: every refusal names the field and the problem."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest

from modeldeploy.server.bundle import read_card
from modeldeploy.server.validation import InputSchema
from modeldeploy.server.wire import RequestError, check_content_type, parse_feedback, parse_json

GOOD_ROW = {
    "request_rate": 400.0,
    "error_pct": 0.5,
    "p99_latency_ms": 180.0,
    "deploy_hour": 10,
    "is_weekend": 0,
}


@pytest.fixture(scope="module")
def schema(bundles: dict[str, Any]) -> InputSchema:
    return InputSchema.from_card(read_card(bundles["good"].path), max_rows=8)


def row(**changes: Any) -> dict[str, Any]:
    out = {**GOOD_ROW, **changes}
    return {k: v for k, v in out.items() if v is not _DROP}


_DROP = object()


def test_valid_records_become_one_array_in_card_order(schema: InputSchema) -> None:
    shuffled = dict(reversed(list(GOOD_ROW.items())))
    rows = schema.rows_from_predict({"instances": [shuffled, row(error_pct=3)]})
    assert rows == [[400.0, 0.5, 180.0, 10, 0], [400.0, 3, 180.0, 10, 0]]


@pytest.mark.parametrize(
    ("payload", "status", "field", "problem"),
    [
        ([GOOD_ROW], 422, "body", "must be a JSON object"),
        ({}, 422, "instances", "is missing"),
        ({"instances": [GOOD_ROW], "extra": 1}, 422, "extra", "not an accepted field"),
        ({"instances": GOOD_ROW}, 422, "instances", "must be an array"),
        ({"instances": []}, 422, "instances", "is empty"),
        ({"instances": [GOOD_ROW] * 9}, 413, "instances", "at most 8"),
        ({"instances": [GOOD_ROW, 5]}, 422, "instances[1]", "must be an object"),
        ({"instances": [row(error_pct=_DROP)]}, 422, "instances[0].error_pct", "is missing"),
        ({"instances": [row(colour=1)]}, 422, "instances[0].colour", "not a feature"),
        (
            {"instances": [row(error_pct="0.5")]},
            422,
            "instances[0].error_pct",
            "must be a number, got string",
        ),
        ({"instances": [row(error_pct=None)]}, 422, "instances[0].error_pct", "got null"),
        ({"instances": [row(is_weekend=True)]}, 422, "instances[0].is_weekend", "got boolean"),
        ({"instances": [row(request_rate=[1])]}, 422, "instances[0].request_rate", "got array"),
        ({"instances": [row(error_pct=math.inf)]}, 422, "instances[0].error_pct", "finite"),
        ({"instances": [row(error_pct=math.nan)]}, 422, "instances[0].error_pct", "finite"),
        ({"instances": [row(error_pct=101)]}, 422, "instances[0].error_pct", "at most 100"),
        ({"instances": [row(request_rate=-1)]}, 422, "instances[0].request_rate", "at least 0"),
        (
            {"instances": [GOOD_ROW, row(deploy_hour=3.5)]},
            422,
            "instances[1].deploy_hour",
            "must be an integer",
        ),
        (
            {"instances": [row(is_weekend=2)]},
            422,
            "instances[0].is_weekend",
            "not a known category",
        ),
        ({"instances": [row(request_rate=10**400)]}, 422, "instances[0].request_rate", "too large"),
    ],
)
def test_predict_refusals_name_field_and_problem(
    schema: InputSchema, payload: Any, status: int, field: str, problem: str
) -> None:
    with pytest.raises(RequestError) as caught:
        schema.rows_from_predict(payload)
    assert (caught.value.status, caught.value.field) == (status, field)
    assert problem in caught.value.problem
    assert field in str(caught.value)


def test_body_and_content_type() -> None:
    assert parse_json(b'{"a": 1}') == {"a": 1}
    for body, problem in (
        (b"", "is empty"),
        (b"{", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
    ):
        with pytest.raises(RequestError, match=problem) as caught:
            parse_json(body)
        assert caught.value.status == 400
    check_content_type(b"application/json; charset=utf-8")
    check_content_type(b"Application/JSON")
    for value in (None, b"text/plain", b"application/jsonx"):
        with pytest.raises(RequestError) as caught:
            check_content_type(value)
        assert caught.value.status == 415 and caught.value.field == "content-type"


def infer(*tensors: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"inputs": list(tensors), **top}


def test_infer_accepts_one_matrix_tensor_flat_or_nested(schema: InputSchema) -> None:
    values = [400.0, 0.5, 180.0, 10, 0, 800.0, 2.0, 300.0, 22, 1]
    flat = infer({"name": "input-0", "shape": [2, 5], "datatype": "FP64", "data": values}, id="x1")
    nested = infer(
        {"name": "input-0", "shape": [2, 5], "datatype": "FP32", "data": [values[:5], values[5:]]}
    )
    a, req_id = schema.rows_from_infer(flat)
    b, no_id = schema.rows_from_infer(nested)
    assert req_id == "x1" and no_id is None
    assert a.tolist() == b.tolist() == [values[:5], values[5:]]


def test_infer_accepts_one_tensor_per_feature_in_any_order(schema: InputSchema) -> None:
    cols = {
        "request_rate": [400.0, 800.0],
        "error_pct": [0.5, 2.0],
        "p99_latency_ms": [180.0, 300.0],
        "deploy_hour": [10, 22],
        "is_weekend": [0, 1],
    }
    tensors = [
        {
            "name": n,
            "shape": [2],
            "datatype": "INT64" if n in ("deploy_hour", "is_weekend") else "FP64",
            "data": v,
        }
        for n, v in reversed(list(cols.items()))
    ]
    arr, _ = schema.rows_from_infer(infer(*tensors))
    assert arr[:, 0].tolist() == [400.0, 800.0] and arr[:, 4].tolist() == [0.0, 1.0]


def _matrix(data: Any, shape: Any = (1, 5), datatype: str = "FP64", **more: Any) -> dict[str, Any]:
    return {
        "name": "input-0",
        "shape": list(shape) if isinstance(shape, tuple) else shape,
        "datatype": datatype,
        "data": data,
        **more,
    }


ONE = [400.0, 0.5, 180.0, 10, 0]


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [
        ({"inputs": [_matrix(ONE)], "bogus": 1}, "bogus", "not a field"),
        ({}, "inputs", "is missing"),
        ({"inputs": []}, "inputs", "non-empty"),
        (infer(_matrix(ONE), id=5), "id", "must be a string"),
        (
            infer({"name": "input-0", "shape": [1, 5], "data": ONE}),
            "inputs[0].datatype",
            "is missing",
        ),
        (infer(_matrix(ONE, datatype="BYTES")), "inputs[0].datatype", "numeric tensor type"),
        (infer(_matrix(ONE, shape=[1, -5])), "inputs[0].shape", "non-negative"),
        (infer(_matrix(ONE[:4], shape=(1, 4))), "inputs[0].shape", "[rows, 5]"),
        (infer(_matrix(ONE, shape=(2, 5))), "inputs[0].data", "has 5 values"),
        (infer(_matrix(ONE[:4] + ["x"])), "inputs[0].data[4]", "must be a number"),
        (infer(_matrix(ONE[:4] + [True])), "inputs[0].data[4]", "must be a number"),
        (infer(_matrix(ONE[:3] + [25, 0])), "inputs[0].data[3] (deploy_hour, row 0)", "at most 23"),
        (infer(_matrix([], shape=(0, 5))), "inputs[0].shape", "is empty"),
        (infer(_matrix(ONE * 9, shape=(9, 5))), "inputs[0].shape", "at most 8"),
        (infer(_matrix(ONE, extra=1)), "inputs[0].extra", "not a field of a tensor"),
        (
            infer(
                {"name": "error_pct", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "error_pct", "shape": [1], "datatype": "FP64", "data": [1.0]},
            ),
            "inputs[1].name",
            "given twice",
        ),
        (
            infer(
                {"name": "error_pct", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "colour", "shape": [1], "datatype": "FP64", "data": [1.0]},
            ),
            "inputs[1].name",
            "not a feature",
        ),
        (
            infer(
                {"name": "error_pct", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "is_weekend", "shape": [1], "datatype": "FP64", "data": [1.0]},
            ),
            "inputs.request_rate",
            "is missing",
        ),
    ],
)
def test_infer_refusals_name_field_and_problem(
    schema: InputSchema, payload: Any, field: str, problem: str
) -> None:
    with pytest.raises(RequestError) as caught:
        schema.rows_from_infer(payload)
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert 400 <= caught.value.status < 500


def test_feedback_parsing() -> None:
    assert parse_feedback({"request_id": "r1", "labels": [0, 1]}, (0, 1)) == ("r1", [0.0, 1.0])
    assert parse_feedback({"request_id": "r1", "label": 1}, (0, 1)) == ("r1", [1.0])
    for payload, field in (
        ({"labels": [1]}, "request_id"),
        ({"request_id": "r", "labels": [2]}, "labels[0]"),
        ({"request_id": "r", "label": 1, "labels": [1]}, "labels"),
        ({"request_id": "r", "labels": ["a"]}, "labels[0]"),
        ({"request_id": "r", "labels": [1], "x": 1}, "x"),
        ([], "body"),
    ):
        with pytest.raises(RequestError) as caught:
            parse_feedback(payload, (0, 1))
        assert caught.value.field == field


def test_random_junk_never_escapes_as_anything_but_a_request_error(schema: InputSchema) -> None:
    """Whatever JSON a client sends, validation either accepts it or raises RequestError."""
    rng = np.random.default_rng(0)
    atoms: list[Any] = [
        None,
        True,
        0,
        -1,
        1.5,
        1e308,
        "x",
        "",
        [],
        {},
        [1, 2],
        {"a": 1},
        23,
        100,
        10**18,
    ]
    keys = [
        "instances",
        "inputs",
        "request_rate",
        "error_pct",
        "p99_latency_ms",
        "deploy_hour",
        "is_weekend",
        "name",
        "shape",
        "datatype",
        "data",
        "id",
        "x",
    ]

    def junk(depth: int) -> Any:
        kind = rng.integers(0, 3 if depth < 4 else 1)
        if kind == 0:
            return atoms[rng.integers(0, len(atoms))]
        if kind == 1:
            return [junk(depth + 1) for _ in range(rng.integers(0, 4))]
        return {
            keys[rng.integers(0, len(keys))]: junk(depth + 1) for _ in range(rng.integers(0, 6))
        }

    def near_valid() -> dict[str, Any]:
        """A valid request of either shape with one value replaced by junk."""
        if rng.integers(0, 2):
            payload: dict[str, Any] = {
                "instances": [dict(GOOD_ROW) for _ in range(rng.integers(1, 3))]
            }
            target = payload["instances"][0]
            target[list(target)[rng.integers(0, 5)]] = junk(2)
        else:
            payload = infer(_matrix(list(ONE)))
            tensor = payload["inputs"][0]
            key = ["name", "shape", "datatype", "data"][rng.integers(0, 4)]
            if key == "data" and rng.integers(0, 2):
                tensor["data"][rng.integers(0, 5)] = junk(3)
            else:
                tensor[key] = junk(2)
        return payload

    accepted = 0
    for i in range(4000):
        payload = orjson.loads(orjson.dumps(junk(0) if i % 2 else near_valid()))
        for parse in (schema.rows_from_predict, schema.rows_from_infer):
            try:
                rows = parse(payload)
                accepted += 1
                assert np.isfinite(
                    np.asarray(rows[0] if isinstance(rows, tuple) else rows, dtype=np.float64)
                ).all()
            except RequestError as exc:
                assert 400 <= exc.status < 500 and exc.problem
    assert accepted > 0

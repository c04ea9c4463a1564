"""What the labelled-data store's server tests send: the churn model's rows as a client sends
them, a prediction, a label, and a bounded wait."""

from __future__ import annotations

import time
from typing import Any

from server_process import Server

from modeldeploy.server import contract as c

FEATURES = ["plan", "region", "monthly fee", "has_support", "tickets"]


def records(frame: Any) -> list[dict[str, Any]]:
    return [
        {
            "plan": str(p),
            "region": str(g),
            "monthly fee": float(f),
            "has_support": bool(s),
            "tickets": int(t),
        }
        for p, g, f, s, t in frame[FEATURES].itertuples(index=False)
    ]


def predict(server: Server, rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    with server.client() as http:
        answer = http.post(c.PREDICT_PATH, json={"instances": rows})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.headers[c.REQUEST_ID_HEADER] == body["request_id"]
    return body["request_id"], body["predictions"]


def label(server: Server, request_id: str, labels: list[Any]) -> int:
    with server.client() as http:
        answer = http.post(c.FEEDBACK_PATH, json={"request_id": request_id, "labels": labels})
    return answer.status_code


def wait_for(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())

"""/feedback against a real server process: who may label a prediction, and concept drift
found on the labelled errors (the detectors themselves: test_changepoint.py)."""

from __future__ import annotations

import re
from typing import Any

from server_process import Server

from modeldeploy.server import contract as c
from modeldeploy.server.changepoint import WARMUP
from modeldeploy.server.examples import as_records, generate_traffic


def sample(samples: dict[Any, float], name: str, **match: str) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and all((k, w) in labels for k, w in match.items())
    )


def test_feedback_ids_cannot_be_chosen_or_guessed(good_server: Server) -> None:
    """A client that names its own request id, or guesses the next one, cannot label a
    prediction: ids are the server's, 128 random bits."""
    x = generate_traffic(5, seed=81)
    with good_server.client() as http:
        chosen = http.post(
            "/predict", json={"instances": as_records(x)}, headers={"x-request-id": "mine-1"}
        )
        theirs = chosen.json()["request_id"]
        assert theirs == chosen.headers[c.REQUEST_ID_HEADER] != "mine-1"
        assert chosen.headers[c.CLIENT_REQUEST_ID_HEADER] == "mine-1"
        refused = http.post("/feedback", json={"request_id": "mine-1", "labels": [0] * len(x)})
        assert refused.status_code == 404, refused.text
        ids = [
            http.post("/predict", json={"instances": as_records(x[:1])}).json()["request_id"]
            for _ in range(20)
        ]
        assert len(set(ids)) == 20 and all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
        # Neighbouring ids share no prefix beyond chance (they used to be PREFIX-COUNTER).
        assert len({i[:8] for i in ids}) == 20
        accepted = http.post("/feedback", json={"request_id": theirs, "labels": [0] * len(x)})
        assert accepted.status_code == 200, accepted.text


def test_labels_that_turn_wrong_raise_a_concept_drift_alarm(good_server: Server) -> None:
    """Labels that agree with the predictions, then labels that contradict them: the
    inputs never change (no input drift could see it), the errors do."""

    def label(agree: bool, batches: int, seed: int) -> None:
        with good_server.client() as http:
            for i in range(batches):
                x = generate_traffic(50, seed=seed + i)
                answer = http.post("/predict", json={"instances": as_records(x)}).json()
                predicted = answer["predictions"]
                labels = predicted if agree else [1 - p for p in predicted]
                fb = http.post(
                    "/feedback", json={"request_id": answer["request_id"], "labels": labels}
                )
                assert fb.status_code == 200, fb.text

    def alarms(samples: dict[Any, float]) -> dict[str, float]:
        return {
            d: sample(samples, c.METRIC_CONCEPT_DRIFT_ALARMS, detector=d)
            for d in ("cusum", "page_hinkley")
        }

    before = alarms(good_server.metrics())
    label(agree=True, batches=WARMUP // 50 + 4, seed=1000)
    steady = good_server.metrics()
    assert alarms(steady) == before  # right answers: no alarm, whatever their spread
    label(agree=False, batches=3, seed=2000)
    after = good_server.metrics()
    raised = {d: after_n - before[d] for d, after_n in alarms(after).items()}
    assert raised["cusum"] >= 1 and raised["page_hinkley"] >= 1, raised
    shares = [
        sample(after, c.METRIC_CONCEPT_DRIFT_STATISTIC, detector=d)
        for d in ("cusum", "page_hinkley")
    ]
    assert all(0 <= s < 1 for s in shares), shares  # they started over after the alarm

"""/feedback that lands on another replica than the one that predicted (as a Service sends
it) is forwarded to the one that did: real server processes on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import Server, free_port, start_server

from modeldeploy.server import contract as c
from modeldeploy.server.examples import as_records, generate_traffic
from modeldeploy.server.peers import FORWARD_TIMEOUT_SECONDS, FORWARDED_HEADER, parse_targets


@pytest.fixture
def pair(bundles: dict[str, object], tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two replicas of the good model, each told the other (and itself, as a headless
    Service's records include the asking pod) is a peer."""
    good = bundles["good"]
    port_a, port_b = free_port(), free_port()
    peers = f"127.0.0.1:{port_a},127.0.0.1:{port_b}"
    servers = [
        start_server(
            good.path,  # type: ignore[attr-defined]
            good.sha256,  # type: ignore[attr-defined]
            tmp_path / f"{name}.log",
            c.FLAG_FEEDBACK_PEERS,
            peers,
            port=port,
        )
        for name, port in (("a", port_a), ("b", port_b))
    ]
    yield servers[0], servers[1]
    for server in servers:
        server.stop()


def predict(server: Server, rows: int, seed: int) -> httpx.Response:
    x = generate_traffic(rows, seed=seed)
    with server.client() as http:
        return http.post(c.PREDICT_PATH, json={"instances": as_records(x)})


def test_a_label_sent_to_the_other_replica_reaches_the_one_that_predicted(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    answer = predict(a, 3, seed=1)
    request_id = answer.headers[c.REQUEST_ID_HEADER]
    with b.client() as http:
        fb = http.post(c.FEEDBACK_PATH, json={"request_id": request_id, "labels": [1, 0, 1]})
    assert fb.status_code == 200, fb.text
    assert fb.json()["accepted"] == 3 and fb.json()["for_request_id"] == request_id
    assert fb.headers[c.MODEL_VERSION_HEADER] == answer.headers[c.MODEL_VERSION_HEADER]
    # Counted where the prediction was made, once; the replica that forwarded counts nothing.
    rows = ("modeldeploy_feedback_rows_total", ())
    assert a.metrics().get(rows, 0.0) == 3.0
    assert b.metrics().get(rows, 0.0) == 0.0
    # The prediction is labelled now: a second label for it is unknown everywhere.
    with b.client() as http:
        again = http.post(c.FEEDBACK_PATH, json={"request_id": request_id, "labels": [1, 0, 1]})
        assert again.status_code == 404, again.text
        # A peer's refusal that is not "unknown" comes back as it is (wrong label count).
        other = predict(a, 2, seed=2).headers[c.REQUEST_ID_HEADER]
        wrong = http.post(c.FEEDBACK_PATH, json={"request_id": other, "labels": [1]})
        assert wrong.status_code == 422 and "had 2 rows" in wrong.text


def test_a_forwarded_label_is_never_forwarded_again(pair: tuple[Server, Server]) -> None:
    a, b = pair
    request_id = predict(a, 1, seed=3).headers[c.REQUEST_ID_HEADER]
    with b.client() as http:
        fb = http.post(
            c.FEEDBACK_PATH,
            json={"request_id": request_id, "labels": [1]},
            headers={FORWARDED_HEADER: "1"},
        )
    assert fb.status_code == 404  # b alone does not know it, and asks nobody
    with a.client() as http:
        assert (
            http.post(c.FEEDBACK_PATH, json={"request_id": request_id, "labels": [1]}).status_code
            == 200
        )


def test_an_unknown_id_is_refused_in_bounded_time_when_a_peer_is_down(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    a.stop()
    started = time.monotonic()
    with b.client() as http:
        fb = http.post(c.FEEDBACK_PATH, json={"request_id": "0" * 32, "labels": [1]})
    assert fb.status_code == 404, fb.text
    assert time.monotonic() - started < FORWARD_TIMEOUT_SECONDS + 3.0
    assert "did not answer" in b.log()


def test_peer_targets_are_checked() -> None:
    assert parse_targets("md-peers.ns.svc:8080") == [("md-peers.ns.svc", 8080)]
    assert parse_targets("a,b:9000") == [("a", c.DEFAULT_PORT), ("b", 9000)]
    for bad in ("", "a:", "a:0", "a:x", ":80"):
        with pytest.raises(ValueError, match="NAME"):
            parse_targets(bad)

"""The end-to-end helpers themselves, without the cluster: the traffic generator's address
guard, counting and retries against a real HTTP server on loopback, and the fast rules."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from e2e import stack as st
from e2e.traffic import Traffic, check_address, dataframe_rows, wait_answering


@pytest.mark.parametrize("host", ["127.0.0.1", "10.96.0.10", "10.244.0.7", "10.250.0.2"])
def test_cluster_and_loopback_addresses_are_allowed(host: str) -> None:
    assert check_address(host) == host


@pytest.mark.parametrize("host", ["8.8.8.8", "10.0.0.1", "192.168.1.1", "172.17.0.1"])
def test_any_other_address_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="outside"):
        check_address(host)
    with pytest.raises(ValueError):
        Traffic(host)


class _Handler(BaseHTTPRequestHandler):
    """Answers as v1 or v2 in turn; drops every 7th connection without an answer."""

    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.lock:
            type(self).calls += 1
            n = type(self).calls
        if n % 7 == 0:
            self.close_connection = True
            self.connection.close()
            return
        out = json.dumps({"probabilities": [[0.75, 0.25]] * len(body["instances"])}).encode()
        self.send_response(200)
        self.send_header("x-model-version", "v1" if n % 2 else "v2")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def test_traffic_counts_answers_per_version_retries_and_stops_at_its_bound(server: int) -> None:
    # retries asked for: the counting of retried requests is what is checked here
    traffic = Traffic(
        "127.0.0.1", port=server, rate=200, batch=3, max_requests=60, max_seconds=20, retries=2
    )
    started = time.monotonic()
    with traffic:
        while traffic.snapshot().sent < 60 and time.monotonic() - started < 20:
            time.sleep(0.05)
        time.sleep(0.5)
    t = traffic.tally
    assert t.sent == 60 and t.answered == 60 and t.lost == 0, t.as_dict()
    assert t.retried >= 5  # every 7th connection was dropped and retried
    assert set(t.by_version) == {"v1", "v2"} and sum(t.by_version.values()) == 60
    assert t.rows == 180
    sums = [
        sec.score_sum[v] / sec.score_n[v] for sec in traffic.seconds.values() for v in sec.score_n
    ]
    assert sums and all(abs(m - 0.25) < 1e-9 for m in sums)


def test_traffic_by_default_retries_nothing_and_counts_every_failed_attempt_as_lost(
    server: int,
) -> None:
    traffic = Traffic("127.0.0.1", port=server, rate=200, max_requests=70, max_seconds=20)
    started = time.monotonic()
    with traffic:
        while traffic.snapshot().sent < 70 and time.monotonic() - started < 20:
            time.sleep(0.05)
        time.sleep(0.5)
    t = traffic.tally
    assert t.sent == 70 and t.retried == 0, t.as_dict()
    assert t.lost == 10 and t.answered == 60, t.as_dict()  # every 7th connection dropped


def test_dataframe_rows_send_json_records_and_answers_are_kept_per_version(server: int) -> None:
    import numpy as np
    import pandas as pd

    def make(count: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "plan": rng.choice(["free", "pro"], count),
                "autopay": rng.random(count) < 0.5,
                "seats": rng.integers(0, 9, count),
                "spend": rng.random(count),
                "churned": ["no"] * count,
            }
        )

    rows = dataframe_rows(make, drop=("churned",))
    assert [type(v) for v in rows(4, 0, False)[0].values()] == [str, bool, int, float]
    with pytest.raises(ValueError, match="no shifted"):
        rows(4, 0, True)
    # retries: this server drops every 7th connection, and what is checked is the rows sent
    traffic = Traffic(
        "127.0.0.1",
        port=server,
        rate=200,
        batch=2,
        max_requests=30,
        rows=rows,
        keep_answers=3,
        retries=2,
    )
    started = time.monotonic()
    with traffic:
        while traffic.snapshot().answered < 30 and time.monotonic() - started < 20:
            time.sleep(0.05)
    assert traffic.tally.answered == 30 and traffic.tally.lost == 0, traffic.tally.as_dict()
    assert sorted(a.version for a in traffic.answers) == ["v1"] * 3 + ["v2"] * 3
    for a in traffic.answers:
        assert [list(r) for r in a.records] == [["plan", "autopay", "seats", "spend"]] * 2
        assert len(a.answer["probabilities"]) == 2


def test_fast_rules_change_only_intervals_and_for() -> None:
    original = yaml.safe_load(st.CHART_RULES.read_text())
    fast = yaml.safe_load(st.fast_rules())
    assert [g["name"] for g in fast["groups"]] == [g["name"] for g in original["groups"]]
    for g_fast, g_orig in zip(fast["groups"], original["groups"], strict=True):
        assert g_fast["interval"] == st.GROUP_INTERVAL
        for r_fast, r_orig in zip(g_fast["rules"], g_orig["rules"], strict=True):
            assert r_fast["expr"] == r_orig["expr"]
            assert r_fast.get("labels") == r_orig.get("labels")
            assert ("for" in r_fast) == ("for" in r_orig)
            if "for" in r_fast:
                assert r_fast["for"] == st.ALERT_FOR


class _Answering(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["content-length"]))
        out = b'{"probabilities": [[0.5, 0.5]]}'
        self.send_response(200)
        self.send_header("x-model-version", "v7")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *_: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_wait_answering_polls_until_the_address_answers_and_is_bounded() -> None:
    port = _free_port()
    with pytest.raises(TimeoutError, match="did not answer.*ConnectionRefused"):
        wait_answering("127.0.0.1", port, timeout=0.5)
    with pytest.raises(ValueError, match="outside"):
        wait_answering("8.8.8.8", port, timeout=0.5)

    def serve_later() -> None:
        time.sleep(0.8)
        srv = ThreadingHTTPServer(("127.0.0.1", port), _Answering)
        servers.append(srv)
        srv.serve_forever()

    servers: list[ThreadingHTTPServer] = []
    threading.Thread(target=serve_later, daemon=True).start()
    started = time.monotonic()
    try:
        assert wait_answering("127.0.0.1", port, timeout=20) == "v7"
        assert time.monotonic() - started >= 0.8  # it was refused first, and kept polling
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()

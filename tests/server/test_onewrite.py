"""The server's HTTP protocol: a response's head and first body chunk in one write.

Write counts come from uvicorn's real protocol objects on a transport that records what it
is given (the socket's place); the answers themselves from a real uvicorn server on
loopback, read off a raw socket, for the cases the hold must not break: HEAD, a streamed
answer, pipelined requests, ``Connection: close`` and ``Expect: 100-continue``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from modeldeploy.server.onewrite import OneWriteHttpToolsProtocol

BODY = b'{"ok":true}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers BODY; ``/stream`` answers it in three chunks with a pause between them."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"%d;" % i, "more_body": i < 2})
            await asyncio.sleep(0.01)
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


class Recording(asyncio.Transport):
    """Records each write; answers the address look-ups uvicorn makes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


def writes_for(protocol_class: type[HttpToolsProtocol], request: bytes) -> Recording:
    """Feed ``request`` to a real uvicorn protocol of ``protocol_class``; return its writes."""

    async def run() -> Recording:
        config = uvicorn.Config(app, http=protocol_class, lifespan="off", log_level="warning")
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = Recording()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(100):  # bounded: the app answers within a few turns of the loop
            await asyncio.sleep(0.005)
            if not protocol.tasks and not protocol.pipeline:
                break
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return transport

    return asyncio.run(run())


GET = b"GET / HTTP/1.1\r\nhost: t\r\n\r\n"


def test_a_response_is_one_write_where_uvicorn_makes_two() -> None:
    stock, ours = writes_for(HttpToolsProtocol, GET), writes_for(OneWriteHttpToolsProtocol, GET)
    assert len(stock.writes) == 2, "uvicorn itself writes the head, then the body"
    assert ours.writes == [b"".join(stock.writes)], "the same bytes, in one write"
    assert ours.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and ours.writes[0].endswith(BODY)


def test_pipelined_requests_keep_their_order_one_write_each() -> None:
    first = b"GET /a HTTP/1.1\r\nhost: t\r\n\r\n"
    ours = writes_for(OneWriteHttpToolsProtocol, first + GET)
    assert len(ours.writes) == 2
    assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(BODY) for w in ours.writes)


def test_a_held_head_goes_out_before_the_connection_closes() -> None:
    ours = writes_for(OneWriteHttpToolsProtocol, b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n")
    assert ours.closed and len(ours.writes) == 1 and ours.writes[0].endswith(BODY)


def test_a_head_answer_without_a_body_write_is_still_written() -> None:
    ours = writes_for(OneWriteHttpToolsProtocol, b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\n")
    assert len(ours.writes) == 1
    assert ours.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and ours.writes[0].endswith(
        b"\r\n\r\n"
    )


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """A real uvicorn server with the protocol on a free loopback port, in a thread."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=OneWriteHttpToolsProtocol, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start within 10 s"
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    thread.join(10)


def exchange(
    port: int, request: bytes, until: bytes | None, parts: tuple[bytes, ...] = ()
) -> bytes:
    """Send ``request`` (then each of ``parts`` once the server answered 100 Continue); read
    until the bytes end with ``until``, or to the server's close when it is None (5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        got = b""
        for part in parts:
            while b"100 Continue\r\n\r\n" not in got:
                chunk = sock.recv(65536)
                assert chunk, f"closed before 100 Continue: {got!r}"
                got += chunk
            sock.sendall(part)
        while until is None or not got.endswith(until):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_over_a_socket_each_kind_of_answer_arrives_whole(server: int) -> None:
    got = exchange(server, GET, BODY)
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(BODY)

    got = exchange(server, b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\n", b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11\r\n" in got

    got = exchange(server, b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n", b"0\r\n\r\n")
    assert got.split(b"\r\n\r\n", 1)[1] == b"2\r\n0;\r\n2\r\n1;\r\n2\r\n2;\r\n0\r\n\r\n"

    close = b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
    got = exchange(server, GET + GET + close, None)  # pipelined, the last one closes
    assert got.count(b"HTTP/1.1 200 OK\r\n") == 3 and got.count(BODY) == 3
    assert got.endswith(BODY) and got.count(b"connection: close\r\n") == 1

    post = b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
    got = exchange(server, post, BODY, parts=(b"{}",))
    assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert got.endswith(BODY)

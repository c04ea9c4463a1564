"""uvicorn's HTTP protocol with a response's head and first body chunk in one write.

uvicorn writes a response in two ``transport.write`` calls: the status line and headers
when the app sends ``http.response.start``, the body when it sends ``http.response.body``.
Each is a system call, and on a TCP connection each is a segment the client's kernel
delivers and may wake the client for. For the small JSON answers of the prediction
endpoints those two writes were about a third of the server's busy time under load (py-spy
at 16 connections; ``bench/serve_bench.py`` measures the result). Here the head is held
until the body's first write and both go out as one, as servers that ``writev`` do.

The hold is per request: each of uvicorn's request-response cycles gets its own
``HeadWithBody`` around the connection's transport, so pipelined requests keep their
order. A first write with no second one after it in the same turn of the event loop (the
head of a ``HEAD`` answer, a streaming answer's head before its first chunk, a ``100
Continue``) is written at the next turn, and at once before the cycle closes the transport,
so nothing is held longer. Everything else passes through to uvicorn unchanged; if a uvicorn version
does not build its cycles on the connection's transport, its own two writes are kept.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadWithBody:
    """A transport that holds the first write (a response's head) for the next one."""

    __slots__ = ("_transport", "_held", "_first", "_loop")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._held = b""
        self._first = True
        self._loop = loop

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._first:
            self._first = False
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        if self._held:
            held, self._held = self._held, b""
            self._transport.write(held + data)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Write a held head (no body write came after it in this turn of the loop)."""
        if self._held:
            held, self._held = self._held, b""
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # is_closing, pause_reading, get_extra_info, ...: the head goes out first
        self.flush()
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; each response's head goes out with its body."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = getattr(self, "cycle", None)
        if cycle is not None and getattr(cycle, "transport", None) is self.transport:
            # the cycle uses only write, close and is_closing of it: HeadWithBody has them
            cycle.transport = cast(asyncio.Transport, HeadWithBody(self.transport, self.loop))

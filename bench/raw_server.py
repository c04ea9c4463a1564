"""The floor for a Python HTTP server here: a raw ASGI app under the same uvicorn that reads
the request body and answers a constant (no framework at all)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]

ANSWER = b'{"predictions":[0],"probabilities":[[0.9,0.1]]}'
HEALTH = b'{"ok":true}'
_HEADERS = [(b"content-type", b"application/json")]


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":  # lifespan: nothing to start or stop
        while (await receive())["type"] != "lifespan.shutdown":
            if scope["type"] == "lifespan":
                await send({"type": "lifespan.startup.complete"})
        if scope["type"] == "lifespan":
            await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # the whole body, as any server must read it
        message = await receive()
        more = message.get("more_body", False)
    answer = ANSWER if scope["method"] == "POST" else HEALTH
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*_HEADERS, (b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})

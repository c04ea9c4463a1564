"""Request ids: 128 random bits each, drawn from one ``os.urandom`` block per 256 ids.

The request id is what ``/feedback`` labels a prediction by, so it is always the server's:
a client that could choose one, or guess another's (sequential ids), could label other
clients' predictions and poison the data a model is retrained on. Every id is therefore 16
bytes from the operating system's random source, as ``secrets.token_hex(16)`` would give;
only the system call is shared, one per 256 ids instead of one per request (a measurable
part of a request's cost on the hot path).

A process that forks must not hand out the ids its parent already holds in its block: the
child drops the inherited block (``os.register_at_fork``) and reads a fresh one.
"""

from __future__ import annotations

import os

_IDS_PER_BLOCK = 256
_ID_BYTES = 16
_BLOCK_BYTES = _IDS_PER_BLOCK * _ID_BYTES


class RequestIds:
    """Hands out 32-hex-digit random ids, refilling its block from ``os.urandom``."""

    def __init__(self) -> None:
        self._block = b""
        self._pos = _BLOCK_BYTES

    def next(self) -> str:
        """A new id (all calls run on the event loop's thread, so no lock is needed)."""
        pos = self._pos
        if pos >= _BLOCK_BYTES:
            self._block = os.urandom(_BLOCK_BYTES)
            pos = 0
        self._pos = pos + _ID_BYTES
        return self._block[pos : pos + _ID_BYTES].hex()

    def forget(self) -> None:
        """Drop the unused rest of the block (after a fork, where the parent may use it)."""
        self._block = b""
        self._pos = _BLOCK_BYTES


_IDS = RequestIds()
os.register_at_fork(after_in_child=_IDS.forget)

new_request_id = _IDS.next

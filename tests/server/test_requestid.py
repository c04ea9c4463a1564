"""Request ids: 128 random bits each, unique across blocks and across a fork."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from modeldeploy.server.requestid import RequestIds, new_request_id

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_ids_are_32_hex_digits_and_unique_across_many_blocks() -> None:
    ids = RequestIds()
    seen = [ids.next() for _ in range(10 * 256 + 7)]
    assert all(HEX32.match(i) for i in seen)
    assert len(set(seen)) == len(seen)


def test_forgetting_the_block_draws_a_fresh_one() -> None:
    ids = RequestIds()
    first = ids.next()
    ids.forget()
    after = [ids.next() for _ in range(256)]
    assert first not in after and len(set(after)) == 256


def ids_in_a_child(next_id: Callable[[], str], count: int) -> set[str]:
    """The ``count`` ids a forked child hands out with ``next_id``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its ids, then leave at once
        try:
            os.close(read)
            os.write(write, "".join(next_id() for _ in range(count)).encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    text = b"".join(chunks).decode()
    return {text[i : i + 32] for i in range(0, len(text), 32)}


def test_a_forked_child_does_not_repeat_the_ids_its_parent_hands_out() -> None:
    new_request_id()  # the parent now holds a block with 255 ids left in it
    child = ids_in_a_child(new_request_id, 255)
    parent = {new_request_id() for _ in range(255)}
    assert len(child) == 255 and len(parent) == 255
    assert not child & parent


def test_without_the_fork_hook_a_child_would_repeat_them() -> None:
    """Why the hook is there: an inherited block hands the child its parent's next ids."""
    ids = RequestIds()  # not registered with os.register_at_fork
    ids.next()
    child = ids_in_a_child(ids.next, 255)
    parent = {ids.next() for _ in range(255)}
    assert child == parent

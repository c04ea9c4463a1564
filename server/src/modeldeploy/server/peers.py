"""Feedback that reaches another replica than the one that predicted: forwarded to it.

A label is matched to its prediction by request id, and each server process remembers only
the predictions it made. Behind a Service (or a gateway splitting between the stable and the
candidate) a ``POST /feedback`` lands on any pod of the ModelDeployment, so without help
every label for a prediction made elsewhere would be refused as unknown: with two replicas,
half the labels, and with them half of the live-performance evidence and of the retraining
data, would be lost.

So a server given its peers (``--feedback-peers NAME:PORT``, a headless Service over every
pod of the ModelDeployment, both slots; or a comma-separated list of them) asks them when it
does not know an id: it resolves the names, sends the same body to every other address at
once with ``FORWARDED_HEADER`` (so
a forwarded label is never forwarded again), and returns the first answer that is not
"unknown". The answer is the peer's own, identity headers included, so the client sees the
model and version that made the prediction. Each forward is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from modeldeploy.server import contract as c

log = logging.getLogger(__name__)

FLAG_FEEDBACK_PEERS = c.FLAG_FEEDBACK_PEERS
FORWARDED_HEADER = "x-modeldeploy-forwarded"
ENV_POD_IP = c.ENV_POD_IP
FORWARD_TIMEOUT_SECONDS = 2.0
# The answer headers a forwarded answer keeps (the peer's identity, as the client expects).
KEPT_HEADERS = (c.MODEL_NAME_HEADER, c.MODEL_VERSION_HEADER, c.REQUEST_ID_HEADER)


@dataclass(frozen=True)
class Forwarded:
    """A peer's answer to a forwarded label."""

    status: int
    body: bytes
    headers: dict[str, str]
    peer: str


def parse_targets(value: str) -> list[tuple[str, int]]:
    """``NAME[:PORT],...`` (PORT default the server's) to [(host, port)]; ``ValueError``."""
    out = []
    for item in (v.strip() for v in value.split(",")):
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, str(c.DEFAULT_PORT)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{FLAG_FEEDBACK_PEERS} {value!r}: expected NAME[:PORT][,...]")
        out.append((host.strip("[]"), int(port)))
    return out


class Peers:
    """The other pods of this ModelDeployment, found by name each time a label needs them
    (pods come and go with every rollout; the name's records follow them). ``own`` is this
    server's (address, port) pairs, never asked."""

    def __init__(self, targets: str, own: set[tuple[str, int]]) -> None:
        self.targets = parse_targets(targets)
        self.own = frozenset(own)
        self._client: Any = None
        self._last_warning = ""

    def _warn_once(self, message: str) -> None:
        """A failure is logged when it changes, not once per label (no log storm)."""
        if message != self._last_warning:
            log.warning("feedback peers: %s", message)
            self._last_warning = message

    async def addresses(self) -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        found: dict[tuple[str, int], None] = {}
        for host, port in self.targets:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                self._warn_once(f"cannot resolve {host}: {exc}")
                continue
            found.update(dict.fromkeys((str(i[4][0]), port) for i in infos))
        return [a for a in found if a not in self.own]

    async def forward(self, body: bytes, content_type: str) -> Forwarded | None:
        """The first peer answer that knows the request id, or None when none does."""
        addresses = await self.addresses()
        if not addresses:
            return None
        client = self._http()
        headers = {"content-type": content_type or "application/json", FORWARDED_HEADER: "1"}
        tasks = [
            asyncio.ensure_future(self._one(client, peer, body, headers)) for peer in addresses
        ]
        try:
            for next_done in asyncio.as_completed(tasks):
                answer = await next_done
                if answer is not None and answer.status != 404:
                    return answer
        finally:
            for task in tasks:
                task.cancel()
        return None

    async def _one(
        self, client: Any, peer: tuple[str, int], body: bytes, headers: dict[str, str]
    ) -> Forwarded | None:
        import httpx

        address, port = peer
        host = f"[{address}]" if ":" in address else address
        url = f"http://{host}:{port}{c.FEEDBACK_PATH}"
        try:
            resp = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._warn_once(f"{address} did not answer: {type(exc).__name__}")
            return None
        kept = {k: resp.headers[k] for k in KEPT_HEADERS if k in resp.headers}
        return Forwarded(resp.status_code, resp.content, kept, f"{host}:{port}")

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                timeout=FORWARD_TIMEOUT_SECONDS, trust_env=False, follow_redirects=False
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def own_addresses(host: str, port: int) -> set[tuple[str, int]]:
    """Where this server answers: its listen address, the pod's IP and the host's names."""
    own = {(host, port)}
    if os.environ.get(ENV_POD_IP):
        own.add((os.environ[ENV_POD_IP], port))
    with contextlib.suppress(OSError):  # a host without a resolvable name: the rest is enough
        own.update((str(i[4][0]), port) for i in socket.getaddrinfo(socket.gethostname(), None))
    return own

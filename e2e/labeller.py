"""Ground truth for the predictions the traffic got: ``POST /feedback`` for each answer, as
a user's labelling pipeline does once outcomes are known (here: at once).

The truth is the example world's (``server.examples.incident_labels``) or a changed world's
(``changed_truth``: what makes an incident is no longer what the model learned), switched
while the traffic runs: the labels the retraining loop learns from, and that the
live-performance rules judge. The feedback goes to
the same address as the predictions (the Service or the gateway), so it reaches whichever
replica the router picks, and the replicas forward it to the one that predicted.
"""

from __future__ import annotations

import http.client
import json
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from e2e.traffic import Record, check_address
from modeldeploy.server import contract as c
from modeldeploy.server.examples import FEATURE_NAMES, incident_logit

Truth = Callable[[list[Record]], list[int]]


def _features(records: list[Record]) -> Any:
    return np.array([[float(r[n]) for n in FEATURE_NAMES] for r in records], dtype=np.float64)


def _draw(x: Any, logit: Any) -> list[int]:
    """Outcomes drawn from the probability, deterministic in the rows."""
    rng = np.random.default_rng(zlib.crc32(x.tobytes()))
    return [int(v) for v in rng.random(len(x)) < 1.0 / (1.0 + np.exp(-logit))]


def example_truth(records: list[Record], shift: float = 0.0) -> list[int]:
    """The example's outcome for each row, in its world moved by ``shift`` logits."""
    x = _features(records)
    return _draw(x, incident_logit(x, shift))


def changed_truth(records: list[Record]) -> list[int]:
    """A world where incidents follow errors less and latency (around a higher baseline)
    more: a model trained on the example world ranks and calibrates these outcomes poorly,
    one refitted on them does well (and still honours the card's directional checks)."""
    x = _features(records)
    _, errors, latency, _, weekend = x.T
    return _draw(x, -3.0 + 0.9 * errors + 0.025 * (latency - 320.0) + 0.4 * weekend)


class Labeller:
    """Labels every answer it is given (``Traffic(on_answer=...)``); counts the outcomes."""

    def __init__(
        self,
        host: str,
        port: int = c.DEFAULT_PORT,
        truth: Truth | None = example_truth,
        hostname: str | None = None,
        timeout: float = 2.0,
    ) -> None:
        """``truth`` may be swapped while the traffic runs (the world changes); None
        labels nothing (outcomes not known yet)."""
        self.host, self.port = check_address(host), port
        self.hostname, self.timeout = hostname, timeout
        self.truth = truth
        self.outcomes: Counter[str] = Counter()
        self.rows = 0
        self._lock = threading.Lock()

    def __call__(self, records: list[Record], answer: dict[str, Any]) -> None:
        if self.truth is None:
            return
        labels = self.truth(records)
        body = json.dumps({"request_id": answer["request_id"], "labels": labels}).encode()
        outcome = self._post(body)
        with self._lock:
            self.outcomes[outcome] += 1
            if outcome == "200":
                self.rows += len(labels)

    def _post(self, body: bytes) -> str:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"content-type": "application/json", "connection": "close"}
        if self.hostname:
            headers["host"] = self.hostname
        try:
            conn.request("POST", c.FEEDBACK_PATH, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return str(resp.status)
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__
        finally:
            conn.close()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"rows": self.rows, "outcomes": dict(self.outcomes)}

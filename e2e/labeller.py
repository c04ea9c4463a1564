"""Ground truth for the predictions the traffic got: ``POST /feedback`` for each answer, as
a user's labelling pipeline does once outcomes are known (here: at once).

The truth is the example world's (``server.examples.incident_labels``), optionally a changed
world (``shift`` logits more or fewer incidents than the model learned): the labels the
retraining loop learns from, and that the live-performance rules judge. The feedback goes to
the same address as the predictions (the Service or the gateway), so it reaches whichever
replica the router picks, and the replicas forward it to the one that predicted.
"""

from __future__ import annotations

import http.client
import json
import threading
import zlib
from collections import Counter
from typing import Any

import numpy as np

from e2e.traffic import Record, check_address
from modeldeploy.server import contract as c
from modeldeploy.server.examples import FEATURE_NAMES, incident_labels


def example_truth(records: list[Record], shift: float) -> list[int]:
    """The example's outcome for each row, drawn from its true probability in a world moved
    by ``shift`` logits; deterministic in the rows."""
    x = np.array([[float(r[n]) for n in FEATURE_NAMES] for r in records], dtype=np.float64)
    seed = zlib.crc32(x.tobytes())
    return [int(v) for v in incident_labels(x, seed=seed, shift=shift)]


class Labeller:
    """Labels every answer it is given (``Traffic(on_answer=...)``); counts the outcomes."""

    def __init__(
        self,
        host: str,
        port: int = c.DEFAULT_PORT,
        shift: float = 0.0,
        hostname: str | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.host, self.port = check_address(host), port
        self.hostname, self.timeout = hostname, timeout
        self.shift = shift
        self.outcomes: Counter[str] = Counter()
        self.rows = 0
        self._lock = threading.Lock()

    def __call__(self, records: list[Record], answer: dict[str, Any]) -> None:
        labels = example_truth(records, self.shift)
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

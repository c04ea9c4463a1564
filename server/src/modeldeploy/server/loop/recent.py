"""Which rows of the recent labelled window train a candidate and which judge it.

The trainer and the gate run as two Jobs that never talk to each other, yet the gate must
judge a retrained candidate only on rows it was not fitted on: otherwise the candidate is
measured on its own training data and beats the stable model by memory rather than merit.
Both therefore split the window by the same rule on each row's request id. Request ids are
128 random bits drawn by the server (``requestid``), so the split is a fair sample that
neither Job, nor a client, can steer, and all rows of one request fall on the same side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeldeploy.server.contract import retrain as rc

# One request in HOLDOUT_EVERY is held out for the gate (25%).
HOLDOUT_EVERY = 4


def holdout_mask(frame: Any) -> Any:
    """True for the rows the gate judges on, False for those the trainer fits on."""
    ids = frame[rc.COLUMN_REQUEST_ID].astype(str).to_numpy()
    # The last 8 hex digits of a random id, as a number: uniform, so every value mod 4 is
    # equally likely. Ids that are not hex (a store written by something else) hash instead.
    values = np.fromiter((_bucket(i) for i in ids), dtype=np.int64, count=len(ids))
    return values % HOLDOUT_EVERY == 0


def _bucket(request_id: str) -> int:
    try:
        return int(request_id[-8:], 16)
    except ValueError:
        import zlib

        return zlib.crc32(request_id.encode())


def split(frame: Any) -> tuple[Any, Any]:
    """(training rows, held-out rows) of a window."""
    mask = holdout_mask(frame)
    return frame[~mask], frame[mask]


def with_target(frame: Any, features: tuple[str, ...], target: str) -> Any:
    """The window's feature columns with the labels as column ``target`` (the card's name
    for it), as ``bundle_model`` and ``gate`` read labelled data."""
    out = frame[list(features)].copy()
    out[target] = frame[rc.COLUMN_LABEL].to_numpy()
    return out.reset_index(drop=True)

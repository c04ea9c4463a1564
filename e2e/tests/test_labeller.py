"""The labeller without the cluster: traffic to a real model server on loopback, every
answer labelled through /feedback and counted by the server."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from e2e.labeller import Labeller, changed_truth, example_truth
from e2e.traffic import Traffic
from modeldeploy.server.bundle import bundle_sha256
from modeldeploy.server.examples import build_example, records_for
from tests.server.server_process import start_server


def test_every_answer_is_labelled_and_the_server_counts_the_labels(tmp_path: Path) -> None:
    build_example(tmp_path / "b", "v1", "good", seed=0)
    server = start_server(tmp_path / "b", bundle_sha256(tmp_path / "b"), tmp_path / "s.log")
    try:
        port = int(server.url.rsplit(":", 1)[1])
        labeller = Labeller("127.0.0.1", port, truth=changed_truth)
        traffic = Traffic("127.0.0.1", port, rate=50, batch=4, max_requests=40, on_answer=labeller)
        with traffic:
            traffic._thread.join(timeout=30)  # type: ignore[union-attr]
        assert traffic.tally.answered == 40, traffic.tally.as_dict()
        assert labeller.snapshot() == {"rows": 160, "outcomes": {"200": 40}}
        assert server.metrics()[("modeldeploy_feedback_rows_total", ())] == 160.0
    finally:
        server.stop()


def test_the_truth_is_deterministic_and_follows_the_shift() -> None:
    records = records_for(4000, seed=3)
    base = example_truth(records, 0.0)
    assert base == example_truth(records, 0.0)
    fewer = example_truth(records, -2.0)
    assert np.mean(fewer) < np.mean(base) / 2
    shifted = records_for(4000, seed=3, shifted=True)
    assert changed_truth(shifted) == changed_truth(shifted)
    # the changed world disagrees with the example's on a good share of the same rows
    assert np.mean(np.array(changed_truth(shifted)) != np.array(example_truth(shifted))) > 0.2

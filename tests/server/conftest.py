"""Fixtures for the server's tests: example bundles built once, real uvicorn processes.

``serve`` starts ``python -m modeldeploy serve`` on 127.0.0.1 with a free port, waits for
readiness, and stops the process (and checks it is gone) when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

import pytest
from server_process import Server, StartOptions, start_server
from user_models import fitted_churn

from modeldeploy.server.bundle import bundle_sha256
from modeldeploy.server.bundling import bundle_model
from modeldeploy.server.examples import build_example


@dataclass(frozen=True)
class Built:
    path: Path
    sha256: str


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """The example variants (and a second healthy retrain), built once per session."""
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for key, variant, seed in (
        ("good", "good", 0),
        ("good2", "good", 1),
        ("drifted", "drifted", 0),
        ("diverging", "diverging", 0),
    ):
        build_example(root / key, f"1.0.{seed}-{key}", variant, seed=seed)
        out[key] = Built(root / key, bundle_sha256(root / key))
    return out


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers for one test; all are stopped when it ends."""
    started: list[Server] = []

    def _serve(
        bundle: Built, *extra: str, sha: str | None = "pinned", **kwargs: Unpack[StartOptions]
    ) -> Server:
        server = start_server(
            bundle.path,
            bundle.sha256 if sha == "pinned" else sha,
            tmp_path / f"server-{len(started)}.log",
            *extra,
            **kwargs,
        )
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()
        assert server.process.poll() is not None


@pytest.fixture(scope="module")
def good_server(
    bundles: dict[str, Built], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One stable server of the good model shared by a module's tests (they use deltas)."""
    server = start_server(
        bundles["good"].path,
        bundles["good"].sha256,
        tmp_path_factory.mktemp("logs") / "good.log",
        "--max-batch-wait-ms",
        "5",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def churn_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    model, frame = fitted_churn()
    out = tmp_path_factory.mktemp("bundle") / "churn"
    _, digest = bundle_model(model, frame, "churned", name="churn", version="5", out=out)
    return out, digest

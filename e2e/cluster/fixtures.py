"""pytest fixtures for tests that need the local cluster (registered in the root conftest.py).

`cluster` is session-scoped: it reuses a healthy cluster or brings one up, and tears down at
the end only what it brought up (MODELDEPLOY_KEEP_CLUSTER=1 keeps it for the next run).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .api import Cluster
from .config import Paths
from .sh import locked


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    from .images import current_image_set
    from .lifecycle import down, ensure_images, status, up

    paths = Paths.default()
    brought_up = False
    with locked(paths.lock):
        if status(paths).healthy:
            ensure_images(paths, current_image_set(paths))
        else:
            up(paths)
            brought_up = True
    try:
        yield Cluster.from_paths(paths)
    finally:
        if brought_up and os.environ.get("MODELDEPLOY_KEEP_CLUSTER") != "1":
            with locked(paths.lock):
                down(paths)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def harness_tool(name: str) -> str:
    """A tool of the pinned build (helm, kubectl, ...) for a test that needs no cluster.

    Without the harness's build (a plain `pytest -m "not cluster"` in a fresh virtualenv) the
    test is skipped and says how to get the tool; `make test` sets MODELDEPLOY_REQUIRE_HARNESS
    so that there a missing tool fails instead.
    """
    from .config import built_tool

    try:
        return built_tool(name)
    except RuntimeError as exc:
        if os.environ.get("MODELDEPLOY_REQUIRE_HARNESS") == "1":
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh real ``mlflow server`` (artifacts in its own versitygw) in the node, for one
    test module (``e2e.mlflowstore.Registry``)."""
    from e2e.mlflowstore import mlflow_registry

    with mlflow_registry(tmp_path_factory.mktemp("mlflow")) as reg:
        yield reg

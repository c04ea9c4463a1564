"""What the rollout tests share: one chart install per test module (operator from our image
under the chart's RBAC, watching the module's own restricted namespace), the fast chart rules
in Prometheus, and the bundles (the examples, or a test's own) served from a pod. Imported by
each test module, so each module gets (and removes) its own namespace."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from e2e import stack as st
from e2e.cluster.api import Cluster
from e2e.fileserver import Bundle, serve_bundles
from e2e.stack import Stack
from e2e.traffic import Tally, Traffic, example_rows

VARIANTS = {"v1": "good", "v2": "good", "v3": "diverging", "v4": "drifted"}


@dataclass(frozen=True)
class Env:
    stack: Stack
    bundles: dict[str, Bundle]

    @property
    def cluster(self) -> Cluster:
        return self.stack.cluster

    def deploy(self, name: str, version: str, strategy: dict[str, Any], **kw: Any) -> None:
        self.cluster.apply(
            st.model_deployment(name, self.stack.namespace, self.bundles[version], strategy, **kw)
        )

    def control(self, name: str, command: str) -> None:
        """A manual control (``promote``, ``promote/2``, ``abort``...), as the plugin sets it."""
        self.cluster.kubectl(
            "annotate",
            "--overwrite",
            st.KIND,
            name,
            "-n",
            self.stack.namespace,
            f"modeldeploy.io/control={command}",
        )

    def healthy(self, name: str, version: str, timeout: float = 240) -> dict[str, Any]:
        return st.wait_phase(self.stack, name, "Healthy", version=version, timeout=timeout)

    def finished(self, name: str, version: str, timeout: float = 240) -> dict[str, Any]:
        """The history entry of ``version``'s rollout once it has ended."""

        def done() -> dict[str, Any] | None:
            status = st.status(self.stack, name)
            top = (status.get("history") or [{}])[0]
            return (
                dict(top)
                if top.get("version") == version and not status.get("candidateVersion")
                else None
            )

        return st.wait(
            f"rollout of {version} finished",
            done,
            timeout,
            detail=lambda: st.describe(self.stack, name),
        )

    def traffic(self, service: str, **kw: Any) -> Traffic:
        """Traffic to ``service``, once it answers (``stack.answering_ip``): a new
        Service's start-up is not what a rollout test measures."""
        return Traffic(st.answering_ip(self.stack, service, kw.get("rows", example_rows)), **kw)


@contextmanager
def make_env(
    cluster: Cluster,
    variants: dict[str, str] = VARIANTS,
    bundles: Callable[[Cluster, str], dict[str, Bundle]] | None = None,
    sets: tuple[str, ...] = (),
) -> Iterator[Env]:
    """A fresh namespace with the chart (``sets``: more of its values), the rules and a
    bundle server: the example bundles of ``variants``, or what ``bundles(cluster,
    namespace)`` serves (a test's own)."""
    ns = f"md-e2e-{uuid.uuid4().hex[:6]}"
    s = st.install(cluster, ns, sets=sets)
    try:
        st.load_rules(cluster, ns)
        served = bundles(cluster, ns) if bundles else serve_bundles(cluster, ns, variants)
        yield Env(s, served)
    finally:
        st.uninstall(s)
        st.unload_rules(cluster, ns)


@pytest.fixture(scope="module")
def env(cluster: Cluster) -> Iterator[Env]:
    with make_env(cluster) as e:
        yield e


def assert_none_lost(tally: Tally) -> None:
    """Every request sent got an answer from some version."""
    assert tally.sent > 0
    assert tally.lost == 0, tally.as_dict()
    assert tally.answered == tally.sent == sum(tally.by_version.values()), tally.as_dict()

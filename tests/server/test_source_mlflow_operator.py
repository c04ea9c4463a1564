"""The operator's registry client (aiohttp) against a real ``mlflow server`` on loopback:
the same answers as the server's own resolver, a moved alias, clear failures, and no
credential in a message. Here, beside tests/server/test_source_mlflow.py, whose tracking
server, bundles and ``register`` helper it reuses."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mlflowserver import MLflowServer
from server_process import free_port
from test_source_mlflow import api, churn, mlflow, register, settings

from conftest import Built
from modeldeploy.operator.model import Spec
from modeldeploy.operator.registry import Credentials, RegistryClient
from modeldeploy.operator.resolution import ResolutionCache, SourceError, settle
from modeldeploy.server.contract.registry import Resolved
from modeldeploy.server.sources.mlflow import resolve

__all__ = ["churn", "mlflow"]  # the module's fixtures, shared with test_source_mlflow
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None,
    reason="needs the mlflow package for its tracking server (pip install -e '.[test]')",
)
SECRET = "s3cr3t-operator-token"


def op_resolve(server: MLflowServer | str, uri: str, creds: Credentials | None = None) -> Resolved:
    url = server if isinstance(server, str) else server.url

    async def go() -> Resolved:
        client = RegistryClient(creds or Credentials(), timeout=5.0)
        try:
            return await client.resolve(url, uri)
        finally:
            await client.close()

    return asyncio.run(go())


def test_the_operator_resolves_what_the_init_container_resolves(
    mlflow: MLflowServer, churn: str, bundles: dict[str, Built]
) -> None:
    for uri in (f"models:/{churn}/1", f"models:/{churn}@champion"):
        assert op_resolve(mlflow, uri) == resolve(uri, settings(mlflow))
    got = op_resolve(mlflow, f"models:/{churn}@champion")
    assert (got.version, got.sha256, got.uri) == ("1", bundles["good"].sha256, f"models:/{churn}/1")


def test_a_moved_alias_resolves_to_the_new_version_after_the_cache(
    mlflow: MLflowServer, bundles: dict[str, Built]
) -> None:
    register(mlflow, bundles["good"], "moving", "--alias", "live")
    v2 = register(mlflow, bundles["good2"], "moving")
    spec = Spec.from_body(
        {
            "metadata": {"name": "moving", "namespace": "ml"},
            "spec": {
                "model": {
                    "name": "moving",
                    "version": "1",
                    "bundleURI": "models:/moving@live",
                    "mlflow": {"trackingURI": mlflow.url},
                },
                "server": {"image": "modeldeploy-server:dev"},
                "strategy": {"canary": {}},
            },
        }
    )
    cache, t0 = ResolutionCache(), datetime(2026, 12, 1, tzinfo=UTC)

    async def decide(at: datetime) -> Any:
        client = RegistryClient(Credentials(), timeout=5.0)
        try:
            return await settle(spec, {}, cache, client.resolve, at)
        finally:
            await client.close()

    first = asyncio.run(decide(t0))
    api(mlflow, "POST", "registered-models/alias", name="moving", alias="live", version=v2)
    cached = asyncio.run(decide(t0 + timedelta(seconds=1)))
    later = asyncio.run(decide(t0 + timedelta(seconds=cache.ttl)))
    assert first.spec.template.model.bundle_uri == "models:/moving/1"
    assert cached.spec.template.model.bundle_uri == "models:/moving/1"
    assert later.spec.template.model.bundle_uri == f"models:/moving/{v2}"
    assert later.spec.template.model.sha256 == bundles["good2"].sha256


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/nosuchmodel/1", "unknown model 'nosuchmodel'"),
        ("models:/churn/99", "model 'churn' has no version 99"),
        ("models:/churn@nosuchalias", "model 'churn' has no alias 'nosuchalias'"),
    ],
)
def test_unknown_names_fail_with_the_same_messages(
    mlflow: MLflowServer, churn: str, uri: str, message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        op_resolve(mlflow, uri)


def test_an_unreachable_registry_fails_within_the_timeout_without_the_credential() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    creds = Credentials(token=SECRET)
    with pytest.raises(SourceError, match="could not be read") as caught:
        op_resolve(url, "models:/churn@champion", creds)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(RegistryClient(creds)) and SECRET not in repr(creds)


@pytest.fixture
def refusing() -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering 401 and recording the Authorization headers it got."""
    import http.server
    import threading

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        thread.join(timeout=5)


def test_a_refusal_names_the_variables_never_the_token(refusing: tuple[str, list[str]]) -> None:
    url, seen = refusing
    with pytest.raises(SourceError, match="unauthorized") as caught:
        op_resolve(url, "models:/churn@champion", Credentials(token=SECRET))
    assert seen == [f"Bearer {SECRET}"], "one attempt, the token sent"
    assert "MLFLOW_TRACKING_TOKEN" in str(caught.value) and SECRET not in str(caught.value)

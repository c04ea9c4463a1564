"""The operator's registry client (aiohttp) against a real ``mlflow server`` on loopback:
the same answers as the server's own resolver, a moved alias, clear failures, and no
credential in a message. Here, beside tests/server/test_source_mlflow.py, whose tracking
server, bundles and ``register`` helper it reuses."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mlflowserver import MLflowServer
from server_process import free_port
from test_source_mlflow import api, churn, mlflow, register, settings

from conftest import Built
from modeldeploy.operator import writeback as wb
from modeldeploy.operator.model import Spec
from modeldeploy.operator.registry import Credentials, RegistryClient
from modeldeploy.operator.resolution import ResolutionCache, SourceError, settle
from modeldeploy.operator.writeback_task import requests
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

        do_POST = do_GET  # noqa: N815 - the stdlib's name

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


def rollout_status(url: str, name: str, version: str, outcome: str, **entry: str) -> Any:
    """The status a reconcile writes when a rollout of ``version`` ends (as ``carry`` fills
    it in): the slot that ran it, the history entry, the failed alert of a rollback."""
    model = {"bundleURI": f"models:/{name}/{version}", "mlflow": {"trackingURI": url}}
    slot = {"model": model, "revision": f"r{version}"}
    history = [{"version": version, "revision": f"r{version}", "outcome": outcome, **entry}]
    result = {"kind": "alert", "name": "ModelPredictionDivergence", "value": "4.25"}
    new = {
        "slots": {"green": slot},
        "history": history,
        "analysis": {"results": [{**result, "outcome": "Failed"}]},
    }
    return wb.carry({}, new, wb.Settings(enabled=True, alias="production"))


def write_back(url: str, status: Any, creds: Credentials | None = None) -> list[str]:
    async def go() -> list[str]:
        client = RegistryClient(creds or Credentials(), timeout=5.0)
        done = []
        try:
            for item in wb.pending(status, "ml/wb", datetime.now(UTC)):
                await client.write(item.tracking_uri, requests(item))
                done.append(item.describe())
        finally:
            await client.close()
        return done

    return asyncio.run(go())


def version_tags(server: MLflowServer, name: str, version: str) -> dict[str, str]:
    got = api(server, "GET", "model-versions/get", name=name, version=version)
    return {t["key"]: t["value"] for t in got["model_version"]["tags"]}


def test_a_promotion_moves_the_alias_and_a_rollback_tags_the_candidate(
    mlflow: MLflowServer, bundles: dict[str, Built]
) -> None:
    from modeldeploy.server.register import register as register_bundle

    for key, alias in (("good", "production"), ("good2", ""), ("diverging", "")):
        register_bundle(bundles[key].path, settings(mlflow), "wb", alias)
    at = "2026-12-02T10:00:00Z"
    promoted = rollout_status(mlflow.url, "wb", "2", "Promoted", finishedAt=at)
    assert write_back(mlflow.url, promoted) == [
        "models:/wb/2 tagged modeldeploy.rollout.outcome=promoted; alias production -> version 2"
    ]
    alias = api(mlflow, "GET", "registered-models/alias", name="wb", alias="production")
    assert alias["model_version"]["version"] == "2"
    tags = version_tags(mlflow, "wb", "2")
    assert {k: v for k, v in tags.items() if k.startswith("modeldeploy.rollout.")} == {
        "modeldeploy.rollout.outcome": "promoted",
        "modeldeploy.rollout.time": at,
        "modeldeploy.rollout.modeldeployment": "ml/wb",
    }
    assert tags["modeldeploy.sha256"] == bundles["good2"].sha256  # register's tags stay
    rolled = rollout_status(
        mlflow.url, "wb", "3", "RolledBack", reason="AnalysisFailed", finishedAt=at
    )
    write_back(mlflow.url, rolled)
    tags = version_tags(mlflow, "wb", "3")
    assert tags["modeldeploy.rollout.outcome"] == "rolledBack"
    assert tags["modeldeploy.rollout.rule"] == "ModelPredictionDivergence"
    assert tags["modeldeploy.rollout.value"] == "4.25"
    alias = api(mlflow, "GET", "registered-models/alias", name="wb", alias="production")
    assert alias["model_version"]["version"] == "2", "a rollback never moves the alias"
    # done twice is the same (a crash between the calls and the status write repeats them)
    before = version_tags(mlflow, "wb", "2")
    write_back(mlflow.url, promoted)
    assert version_tags(mlflow, "wb", "2") == before


def test_a_refused_write_back_names_the_variables_never_the_token(
    refusing: tuple[str, list[str]],
) -> None:
    url, seen = refusing
    status = rollout_status(url, "wb", "2", "Promoted", finishedAt="2026-12-02T10:00:00Z")
    with pytest.raises(SourceError, match="unauthorized") as caught:
        write_back(url, status, Credentials(token=SECRET))
    assert seen == [f"Bearer {SECRET}"]
    assert "POST" in str(caught.value) and SECRET not in str(caught.value)


class StoredKube:
    """One ModelDeployment's status in memory, as the apiserver keeps it: reads with a
    resourceVersion, merge patches of the status that must name the current one."""

    def __init__(self, status: Any) -> None:
        self.status, self.rv = status, 1

    async def get(self, kind: str, namespace: str, name: str) -> Any:
        return {"metadata": {"resourceVersion": str(self.rv)}, "status": self.status}

    async def patch_status(
        self, kind: str, namespace: str, name: str, patch: Any, resource_version: Any = None
    ) -> Any:
        assert resource_version == str(self.rv), "the write is conditional on what was read"
        self.status, self.rv = {**self.status, **patch}, self.rv + 1
        return {"metadata": {"resourceVersion": str(self.rv)}}


def test_the_task_records_done_and_failed_in_the_entry_with_one_event_each(
    mlflow: MLflowServer, bundles: dict[str, Built], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kopf

    from modeldeploy.operator import writeback_task
    from modeldeploy.operator.metrics import OperatorMetrics
    from modeldeploy.operator.runtime import Config, Runtime
    from modeldeploy.server.register import register as register_bundle

    events: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        writeback_task.kopf,
        "event",
        lambda _b, type, reason, message: events.append((type, reason, message)),
    )
    register_bundle(bundles["good"].path, settings(mlflow), "task", "")
    at = "2026-12-02T10:00:00Z"
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    status = rollout_status(mlflow.url, "task", "1", "Promoted", finishedAt=at)
    unreachable = rollout_status(down, "task", "1", "RolledBack", finishedAt=at, reason="x")
    status["history"].append({**unreachable["history"][0], "revision": "old"})
    kube = StoredKube(status)
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    rt = Runtime(config=Config(), kube=kube, metrics=OperatorMetrics.create())  # type: ignore[arg-type]
    rt.registry = RegistryClient(Credentials(token=SECRET), timeout=5.0)
    rt.now = lambda: now  # type: ignore[method-assign]
    body = kopf.Body({"metadata": {"namespace": "ml", "name": "task"}})

    async def twice() -> None:
        nonlocal now
        await writeback_task.write_pending(rt, body)
        now += timedelta(seconds=30)  # the failed one is due again, and fails the same way
        await writeback_task.write_pending(rt, body)
        await rt.registry.close()

    asyncio.run(twice())
    done, failed = (h["writeBack"] for h in kube.status["history"])
    assert done["state"] == "done" and done["alias"] == "production"
    assert failed["state"] == "failed" and "could not be read" in failed["message"]
    alias = api(mlflow, "GET", "registered-models/alias", name="task", alias="production")
    assert alias["model_version"]["version"] == "1"
    assert [(t, r) for t, r, _ in events] == [
        ("Warning", "WriteBackFailed"),  # the oldest entry first
        ("Normal", "WrittenBack"),
    ], events
    assert all(SECRET not in m for *_, m in events) and SECRET not in str(kube.status)
    assert rt.written[("ml", "task")] == (str(kube.rv), kube.status)


def test_a_gated_version_carries_its_verdict_and_table_as_tags(
    mlflow: MLflowServer, bundles: dict[str, Built]
) -> None:
    from modeldeploy.operator import gatetags as gt
    from modeldeploy.server.register import register as register_bundle

    register_bundle(bundles["good"].path, settings(mlflow), "gated", "")
    checks = [{"name": "roc_auc", "value": 0.92, "threshold": 0.78, "passed": True}]
    run = gt.record(
        {"id": "3", "modelURI": "models:/gated/1"},
        {"passed": True, "checks": checks},
        True,
        "every check passed",
    )
    now = datetime(2026, 12, 2, 10, tzinfo=UTC)

    async def go() -> None:
        client = RegistryClient(Credentials(), timeout=5.0)
        try:
            await client.write(mlflow.url, gt.requests(run, "ml/gated", now))
        finally:
            await client.close()

    asyncio.run(go())
    tags = version_tags(mlflow, "gated", "1")
    assert tags["modeldeploy.gate.verdict"] == "passed"
    assert tags["modeldeploy.gate.summary"] == "every check passed"
    assert json.loads(tags["modeldeploy.gate.checks"]) == checks
    assert tags["modeldeploy.gate.run"] == "3" and tags["modeldeploy.gate.time"] == (
        "2026-12-02T10:00:00Z"
    )
    assert tags["modeldeploy.sha256"] == bundles["good"].sha256  # register's tags stay

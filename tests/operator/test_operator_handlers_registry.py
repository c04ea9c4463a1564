"""The reconcile's resolution step through the handler (a fake apiserver client, as in
test_operator_handlers_status.py, and a registry whose answers the test sets; the real
registry client is tested against a real tracking server in
tests/server/test_source_mlflow_operator.py): a models:/ spec is applied concrete and pinned,
recorded in status; a failure applies nothing new and warns once, or keeps the earlier
resolution of the same URI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kopf
import pytest
from opworld import SHA_A, SHA_B, body
from test_operator_handlers_status import NOW, FakeKube

from modeldeploy.operator import handlers
from modeldeploy.operator.metrics import OperatorMetrics
from modeldeploy.operator.registry import Credentials, RegistryClient
from modeldeploy.operator.resolution import SourceError
from modeldeploy.operator.runtime import Config, Runtime
from modeldeploy.server.contract.registry import Resolved

TRACKING = "http://mlflow.ml.svc:5000"
SECRET = "s3cr3t-operator-token"
MODEL = {
    "name": "iris",
    "version": "1",
    "bundleURI": "models:/iris@champion",
    "mlflow": {"trackingURI": TRACKING, "credentialsSecret": "mlflow-reader"},
}


class Registry(RegistryClient):
    """The operator's client with the network answer replaced by the test's."""

    answer: Resolved | str = ""

    async def resolve(self, tracking_uri: str, uri: str) -> Resolved:
        if isinstance(self.answer, str):
            raise SourceError(self.answer)
        return self.answer


@pytest.fixture
def rt(monkeypatch: pytest.MonkeyPatch) -> Runtime:
    warnings: list[dict[str, Any]] = []
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **kw: None)
    monkeypatch.setattr(kopf, "warn", lambda body, **kw: warnings.append(kw))
    runtime = Runtime(
        config=Config(server_image="modeldeploy-server:dev"),
        kube=FakeKube(),  # type: ignore[arg-type]
        metrics=OperatorMetrics.create(),
        registry=Registry(Credentials(token=SECRET)),
    )
    runtime.now = lambda: NOW  # type: ignore[method-assign]
    runtime.warnings = warnings  # type: ignore[attr-defined]
    return runtime


def answer(rt: Runtime, value: Resolved | str) -> None:
    registry: Registry = rt.registry  # type: ignore[assignment]
    registry.answer = value


def warned(rt: Runtime) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = rt.warnings  # type: ignore[attr-defined]
    return out


def md(status: dict[str, Any]) -> kopf.Body:
    raw = body()
    raw["spec"]["model"] = MODEL
    raw["metadata"].update(uid="u-1", resourceVersion="7")
    return kopf.Body({**raw, "status": status})


def reconcile(rt: Runtime, status: dict[str, Any]) -> None:
    rt.resolutions.entries.clear()  # each call asks the registry (the cache is tested apart)
    asyncio.run(handlers.reconcile(rt, md(status), None, None, trigger="test"))


def init_args(kube: FakeKube) -> list[str]:
    deps = [o for o in kube.applied if o["kind"] == "Deployment"]
    args: list[str] = deps[-1]["spec"]["template"]["spec"]["initContainers"][0]["command"]
    return args


def test_a_resolved_alias_is_applied_concrete_and_recorded(rt: Runtime) -> None:
    answer(rt, Resolved("iris", "3", "champion", "mlflow-artifacts:/1/m", SHA_A))
    reconcile(rt, {})
    kube: FakeKube = rt.kube  # type: ignore[assignment]
    args = init_args(kube)
    assert args[2] == "models:/iris/3" and args[args.index("--sha256") + 1] == SHA_A
    assert args[args.index("--tracking-uri") + 1] == TRACKING
    record = kube.status_patches[-1]["resolvedModel"]
    assert (record["requested"], record["uri"], record["sha256"]) == (
        "models:/iris@champion",
        "models:/iris/3",
        SHA_A,
    )
    assert warned(rt) == []


def test_a_failure_without_a_resolution_applies_nothing_and_warns_once(
    rt: Runtime,
) -> None:
    answer(rt, "models:/iris@champion: model 'iris' has no alias 'champion'")
    reconcile(rt, {})
    kube: FakeKube = rt.kube  # type: ignore[assignment]
    assert kube.applied == []
    message = kube.status_patches[-1]["message"]
    assert message.startswith("model source: models:/iris@champion: model 'iris' has no alias")
    assert warned(rt) == [{"reason": "ModelSourceError", "message": message}]
    reconcile(rt, {"message": message})
    assert len(kube.status_patches) == 1 and len(warned(rt)) == 1


def test_a_failure_keeps_the_earlier_resolution_of_the_same_uri(rt: Runtime) -> None:
    answer(rt, Resolved("iris", "3", "champion", "mlflow-artifacts:/1/m", SHA_B))
    reconcile(rt, {})
    kube: FakeKube = rt.kube  # type: ignore[assignment]
    status = kube.status_patches[-1]
    revision = status["slots"]["blue"]["revision"]
    answer(rt, f"the tracking server {TRACKING} could not be read: ClientConnectorError")
    reconcile(rt, status)
    assert init_args(kube)[2] == "models:/iris/3"
    patch = kube.status_patches[-1]["resolvedModel"]
    assert list(patch) == ["message"], "the resolution itself is kept as it was"
    assert (
        "could not be read" in patch["message"]
        and "still running models:/iris/3" in (patch["message"])
    )
    assert "slots" not in kube.status_patches[-1], "the same revision: nothing under the slot"
    assert status["slots"]["blue"]["revision"] == revision
    assert [w["reason"] for w in warned(rt)] == ["ModelSourceError"]
    sent = json.dumps([kube.status_patches, kube.applied, warned(rt)])
    assert SECRET not in sent, "the operator's credential is in no status, object or Event"

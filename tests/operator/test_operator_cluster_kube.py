"""The operator's Kubernetes client against the real apiserver: server-side apply with our
field manager, get/list (paged)/patch/patch status/delete, discovery, and 409 retries."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.cluster.api import Cluster
from modeldeploy.operator import kube as kube_mod
from modeldeploy.operator.kube import ApiClientKube, KubeError

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> Iterator[str]:
    name = f"md-kube-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def service(ns: str, name: str, port: int = 8080) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"t": "kube"}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port}]},
    }


def test_client_against_the_apiserver(
    cluster: Cluster, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = ApiClientKube.from_environment(str(cluster.kubeconfig))
    monkeypatch.setattr(kube_mod, "PAGE", 2)  # force continue tokens

    async def go() -> None:
        created = await kube.apply(service(ns, "a"))
        managers = {m["manager"] for m in created["metadata"]["managedFields"]}
        assert managers == {"modeldeploy"}
        assert created["metadata"]["managedFields"][0]["operation"] == "Apply"
        again = await kube.apply(service(ns, "a", port=9090))
        assert again["spec"]["ports"][0]["port"] == 9090
        for n in "bcde":
            await kube.apply(service(ns, n))
        items = await kube.list("Service", ns, label_selector="t=kube")
        assert sorted(i["metadata"]["name"] for i in items) == list("abcde")
        assert await kube.get("Service", ns, "missing") is None
        patched = await kube.patch("Service", ns, "a", {"metadata": {"labels": {"x": "1"}}})
        assert patched["metadata"]["labels"] == {"t": "kube", "x": "1"}
        stale = {"metadata": {"resourceVersion": "1", "labels": {"x": "2"}}}
        started = time.monotonic()
        with pytest.raises(KubeError) as err:
            await kube.patch("Service", ns, "a", stale)
        assert err.value.status == 409
        assert time.monotonic() - started >= 1.5, "conflicts are retried with back-off"
        assert await kube.has_api("apps", "v1", "deployments")
        assert not await kube.has_api("apps", "v1", "nonsense")
        assert not await kube.has_api("example.invalid", "v1", "things")
        assert await kube.delete("Service", ns, "a") is True
        assert await kube.delete("Service", ns, "a") is False
        with pytest.raises(KubeError) as bad:
            await kube.apply({**service(ns, "bad"), "spec": {"ports": [{"port": -1}]}})
        assert bad.value.status == 422 and "port" in str(bad.value)

    asyncio.run(go())

"""Rollouts from the MLflow Model Registry written back to it, on the real cluster: a real
``mlflow server`` (artifacts in versitygw) in the node, three versions registered with
``modeldeploy register``, and a ModelDeployment on ``models:/incident@challenger`` with
``writeBack`` enabled whose manifest never changes (no digest in it either: the pin is each
version's tag). Moving the alias starts each rollout: to version 2 it is promoted under real
traffic, and ``production`` moves to it with its tags; to version 3 (diverging) it is rolled
back by ModelPredictionDivergence and tagged with the rule and its value. Each version runs
and reports its card's version; the history and the Events say so. And each bad source (an
unknown alias, model or version, an unreachable tracking server) says why in status and a
Warning, and nothing is applied."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from e2e import stack as st
from e2e.cluster import config
from e2e.cluster.api import Cluster
from e2e.fileserver import Bundle
from e2e.mlflowstore import PORT, Registry
from modeldeploy.server.bundle import bundle_sha256
from modeldeploy.server.examples import build_example
from modeldeploy.server.register import register
from modeldeploy.server.sources.mlflow import MLflowSettings

from .rollout_env import Env, make_env

pytestmark = pytest.mark.cluster

NAME = "incident"  # the registered model
VARIANTS = {"v1": "good", "v2": "good", "v3": "diverging"}
ALIAS = "challenger"


@pytest.fixture(scope="module")
def env(
    cluster: Cluster, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("bundles")

    def registered(_cluster: Cluster, _ns: str) -> dict[str, Bundle]:
        out = {}
        for seed, (version, variant) in enumerate(VARIANTS.items()):
            build_example(root / version, version, variant, seed=seed)
            got = register(root / version, MLflowSettings(registry.url), NAME)
            out[version] = Bundle(version, got.uri, bundle_sha256(root / version))
        move_alias(registry, "1")
        return out

    sets = (f"networkPolicy.registryPorts={{{PORT}}}",)
    with make_env(cluster, bundles=registered, sets=sets) as e:
        yield e


def api(registry: Registry, endpoint: str, **params: str) -> dict[str, Any]:
    query = urllib.parse.urlencode(params)
    url = f"{registry.url}/api/2.0/mlflow/{endpoint}?{query}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def move_alias(registry: Registry, version: str) -> None:
    """What ``modeldeploy register --alias`` does for a new version, for an existing one."""
    body = json.dumps({"name": NAME, "alias": ALIAS, "version": version}).encode()
    req = urllib.request.Request(
        f"{registry.url}/api/2.0/mlflow/registered-models/alias",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def rollout_tags(registry: Registry, version: str) -> dict[str, str]:
    got = api(registry, "model-versions/get", name=NAME, version=version)["model_version"]
    tags = {t["key"]: t["value"] for t in got.get("tags") or []}
    return {k: v for k, v in tags.items() if k.startswith("modeldeploy.rollout.")}


def deploy(env: Env, registry: Registry, name: str, strategy: Any) -> None:
    md = st.model_deployment(name, env.stack.namespace, env.bundles["v1"], strategy)
    model = md["spec"]["model"]
    model["bundleURI"] = f"models:/{NAME}@{ALIAS}"
    del model["sha256"]  # each version's digest tag is its pin
    model["mlflow"] = {"trackingURI": registry.url, "writeBack": {"enabled": True}}
    env.cluster.apply(md)


def written_back(env: Env, name: str, version: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        top = (st.status(env.stack, name).get("history") or [{}])[0]
        wb = top.get("writeBack") or {}
        return dict(top) if top.get("version") == version and wb.get("state") == "done" else None

    return st.wait(
        f"the write-back of {version}", done, 120, detail=lambda: st.describe(env.stack, name)
    )


def test_promotion_sets_production_and_a_rollback_tags_the_candidate(
    env: Env, registry: Registry
) -> None:
    name = "registry"
    # one 30 s analysis step at 50%: a few hundred candidate predictions at 20 requests/s
    strategy = st.canary(50, analysis="30s")
    deploy(env, registry, name, strategy)
    env.healthy(name, "v1")
    resolved = st.status(env.stack, name)["resolvedModel"]
    assert (resolved["uri"], resolved["cardVersion"]) == (f"models:/{NAME}/1", "v1"), resolved
    with env.traffic(name, rate=20, max_seconds=300):
        move_alias(registry, "2")  # the manifest stays as it is
        promoted = env.finished(name, "v2")
        assert promoted["outcome"] == "Promoted", promoted
        entry = written_back(env, name, "v2")
        assert entry["modelURI"] == f"models:/{NAME}/2"
        alias = api(registry, "registered-models/alias", name=NAME, alias="production")
        assert alias["model_version"]["version"] == "2"
        assert rollout_tags(registry, "2") == {
            "modeldeploy.rollout.outcome": "promoted",
            "modeldeploy.rollout.time": entry["finishedAt"],
            "modeldeploy.rollout.modeldeployment": f"{env.stack.namespace}/{name}",
        }

        started = time.monotonic()
        move_alias(registry, "3")
        rolled = env.finished(name, "v3")
        assert rolled["outcome"] == "RolledBack", rolled
        entry = written_back(env, name, "v3")
        assert entry["rule"] == "ModelPredictionDivergence", entry
        tags = rollout_tags(registry, "3")
        assert tags["modeldeploy.rollout.outcome"] == "rolledBack"
        assert tags["modeldeploy.rollout.rule"] == "ModelPredictionDivergence"
        assert tags["modeldeploy.rollout.value"] == entry["value"] != ""
        print(f"rolled back and written back in {time.monotonic() - started:.0f} s")
    alias = api(registry, "registered-models/alias", name=NAME, alias="production")
    assert alias["model_version"]["version"] == "2", "a rollback leaves production alone"
    events = [e for e in st.events(env.stack, name) if e["reason"] == "WrittenBack"]
    assert len(events) == 2 and all(e["type"] == "Normal" for e in events), events
    assert any("alias production -> version 2" in e["message"] for e in events), events


def test_bad_registry_sources_say_why_and_nothing_is_applied(env: Env, registry: Registry) -> None:
    """Each way a models:/ source can be wrong, on the chart-installed operator against the
    real tracking server: the status message and a ModelSourceError Warning say which, and
    no Deployment is made."""
    nowhere = f"http://{config.NODE_IP}:9"  # the discard port: nothing listens in the node
    cases = {
        "no-alias": (f"models:/{NAME}@missing", registry.url, "has no alias 'missing'"),
        "no-model": ("models:/nosuch/1", registry.url, "unknown model 'nosuch'"),
        "no-version": (f"models:/{NAME}/99", registry.url, f"models:/{NAME}/99"),
        "unreachable": (f"models:/{NAME}/1", nowhere, f"tracking server {nowhere} could not"),
    }
    for name, (uri, tracking, _) in cases.items():
        md = st.model_deployment(name, env.stack.namespace, env.bundles["v1"], st.canary(50))
        model = md["spec"]["model"]
        model["bundleURI"] = uri
        del model["sha256"]
        model["mlflow"] = {"trackingURI": tracking}
        env.cluster.apply(md)
    for name, (_, _, expected) in cases.items():

        def said(name: str = name, expected: str = expected) -> str | None:
            message = str(st.status(env.stack, name).get("message") or "")
            return message if expected in message else None

        message = st.wait(
            f"{name}: why, in status", said, 90, detail=lambda n=name: st.describe(env.stack, n)
        )
        assert message.startswith("model source: ") and "nothing new applied" in message
        warnings = [e for e in st.events(env.stack, name) if e["reason"] == "ModelSourceError"]
        assert warnings and all(e["type"] == "Warning" for e in warnings), warnings
        assert expected in warnings[0]["message"], warnings
        made = env.cluster.kubectl_json(
            "get", "deployments", "-n", env.stack.namespace, "-l", f"modeldeploy.io/name={name}"
        )
        assert made["items"] == [], [d["metadata"]["name"] for d in made["items"]]

"""The retraining loop on the local cluster, as the end-to-end tests and ``make demo-loop``
run it: a registered model behind an alias (or, without a registry, a bundle in a bucket of
the same S3 server and ``spec.retrain.output``), a ModelDeployment with ``spec.retrain`` whose
servers write what ``/feedback`` labels to a bucket of the registry's own S3 server, traffic
whose inputs shift and whose outcomes a labeller reports.

The trainer is the project's example (``modeldeploy retrain`` in the server image, no
arguments: the Job's environment says everything) or, to show the gate refusing, a user's
trainer that registers a worse model (``BAD_TRAINER``).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from e2e import stack as st
from e2e.fileserver import Bundle
from e2e.mlflowstore import Registry
from e2e.stack import Stack
from modeldeploy.server import contract as c
from modeldeploy.server.bundle import bundle_sha256
from modeldeploy.server.bundlefiles import pack_bundle
from modeldeploy.server.contract import rules
from modeldeploy.server.examples import build_example
from modeldeploy.server.register import register
from modeldeploy.server.sources.mlflow import MLflowSettings

ALIAS = "champion"
BUCKET = "labelled"
MODELS_BUCKET = "models"  # bundles without a registry, and where their retrained ones go
OUTPUT = f"s3://{MODELS_BUCKET}/retrained"
SECRET = "labelled-store"
EXAMPLE_TRAINER = ["modeldeploy", "retrain"]
# The analysis of a retrained candidate. Not the CRD's default alerts: a model retrained
# because the world changed is meant to predict differently from the stable, so the
# divergence rule (which stands in for outcomes when there are none) would stop every one;
# here outcomes are known, and the live-performance rule judges them instead.
ALERTS = [
    rules.ALERT_DRIFT,
    rules.ALERT_ERROR_RATE,
    rules.ALERT_LATENCY,
    rules.ALERT_LIVE_PERFORMANCE,
]

# A user's trainer with a bug: whatever the data, it registers the example's diverging
# variant (it learned a relation with far more incidents), and answers as trainers do.
BAD_TRAINER = """
import json, os
from pathlib import Path
from modeldeploy.server.examples import build_example
from modeldeploy.server.register import register
from modeldeploy.server.sources.mlflow import MLflowSettings
env = os.environ
out = Path("/tmp/bad")
build_example(out, "bad-" + env["MODELDEPLOY_RETRAIN_RUN"], "diverging", seed=9)
got = register(out, MLflowSettings.from_env(env["MODELDEPLOY_MLFLOW_TRACKING_URI"]),
               env["MODELDEPLOY_RETRAIN_REGISTERED_MODEL"])
Path("/dev/termination-log").write_text(json.dumps(
    {"version": got.version, "modelURI": got.uri, "sha256": got.sha256}))
"""


def register_first(registry: Registry, root: Path, model: str) -> Bundle:
    """Version 1 of ``model`` (the good example) under the alias."""
    build_example(root / model, "v1", "good", seed=0)
    got = register(root / model, MLflowSettings(registry.url), model, ALIAS)
    return Bundle("v1", got.uri, bundle_sha256(root / model))


def upload_first(registry: Registry, root: Path, model: str) -> Bundle:
    """Version 1 of ``model`` (the good example) as an archive in the models bucket."""
    assert registry.store is not None, "the registry runs its own S3 server"
    client = registry.store.client()
    if MODELS_BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=MODELS_BUCKET)
    build_example(root / model, "v1", "good", seed=0)
    archive = pack_bundle(root / model, root / f"{model}.tar.gz")
    key = f"{model}/v1.tar.gz"
    client.put_object(Bucket=MODELS_BUCKET, Key=key, Body=archive.read_bytes())
    return Bundle("v1", f"s3://{MODELS_BUCKET}/{key}", bundle_sha256(root / model))


def prepare_store(registry: Registry, stack: Stack) -> None:
    """The labelled-data bucket and its credentials Secret in the namespace."""
    store = registry.store
    assert store is not None, "the registry runs its own S3 server"
    client = store.client()
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    stack.cluster.apply(store.secret(SECRET, stack.namespace))


def manifest(
    stack: Stack,
    registry: Registry,
    name: str,
    first: Bundle,
    trainer: list[str] | None = None,
    approval: str = "auto",
    output: str = "",
) -> dict[str, Any]:
    """A ModelDeployment of ``models:/NAME@champion`` (with ``output``: of ``first``'s s3://
    bundle, its new bundles written there) that retrains on its own labels. The canary and
    replicas are the CRD's default count (2) with one analysed 50% step."""
    assert registry.store is not None
    md = st.model_deployment(
        name,
        stack.namespace,
        first,
        st.canary(50, analysis="30s"),
        replicas=2,
        analysis={"alerts": ALERTS},
    )
    model = md["spec"]["model"]
    store = {"endpoint": registry.store.endpoint, "credentialsSecret": SECRET}
    if output:
        model["s3"] = store
    else:
        model["bundleURI"] = f"models:/{name}@{ALIAS}"
        del model["sha256"]  # each version's digest tag is its pin
        model["mlflow"] = {"trackingURI": registry.url}
    md["spec"]["retrain"] = {
        "trainer": {"image": stack.cluster.server_image, "command": trainer or EXAMPLE_TRAINER},
        "labelledData": {"uri": f"s3://{BUCKET}/{name}", "s3": store},
        "approval": approval,
        **({"output": {"uri": output}} if output else {}),
    }
    return md


def model_card(ip: str) -> dict[str, Any]:
    """``GET /model-card`` of the Service at ``ip``."""
    url = f"http://{ip}:{c.DEFAULT_PORT}{c.CARD_PATH}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        card: dict[str, Any] = json.loads(resp.read())
    return card


def retrain(stack: Stack, name: str) -> dict[str, Any]:
    return dict(st.status(stack, name).get("retrain") or {})


def runs(stack: Stack, name: str) -> list[dict[str, Any]]:
    """Every run, the current one first."""
    r = retrain(stack, name)
    current = [r["current"]] if r.get("current") else []
    return current + list(r.get("history") or [])


def describe(stack: Stack, name: str) -> str:
    jobs = stack.cluster.kubectl(
        "get", "jobs,pods", "-n", stack.namespace, "-o", "wide", check=False
    ).stdout
    return (
        f"{st.describe(stack, name)}\nretrain: {json.dumps(retrain(stack, name), indent=1)}\n{jobs}"
    )


def wait_run(
    stack: Stack, name: str, what: str, check: Any, timeout: float = 600
) -> dict[str, Any]:
    """The first run ``check`` accepts, bounded in time."""

    def found() -> dict[str, Any] | None:
        return next((r for r in runs(stack, name) if check(r)), None)

    result: dict[str, Any] = st.wait(
        f"{name}: {what}", found, timeout, interval=2.0, detail=lambda: describe(stack, name)
    )
    return result

"""A bundle in an S3-compatible store, on the real cluster: versitygw in the node's network
namespace, a credentials Secret, a ModelDeployment with an s3:// bundleURI. It becomes
Healthy and serves, and the secret is in no pod spec, status, Event or operator log; a
missing key leaves the pods unready with the 404 named and the stable serving."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from e2e import stack as st
from e2e.cluster.api import Cluster
from e2e.fileserver import Bundle
from e2e.s3store import s3_store
from e2e.traffic import Traffic
from modeldeploy.server.bundle import bundle_sha256, pack_bundle
from modeldeploy.server.examples import build_example

from .rollout_env import assert_none_lost

pytestmark = pytest.mark.cluster

CRD = Path(__file__).resolve().parents[2] / "crds" / "modeldeploy.io_modeldeployments.yaml"


def test_s3_bundle_with_a_secret_becomes_healthy_and_serves(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The tree's CRD (helm installs a chart's CRDs only when there are none): without the s3
    # fields in its schema the apiserver would prune spec.model.s3.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.wait_established("modeldeployments.modeldeploy.io")
    ns = f"md-e2e-s3-{uuid.uuid4().hex[:6]}"
    stack = st.install(cluster, ns)
    try:
        with s3_store(tmp_path / "s3") as store:
            client = store.client()
            client.create_bucket(Bucket="models")
            bundles = {}
            for version in ("v1", "v2"):
                folder = tmp_path / version
                build_example(folder, version, "good", seed=0)
                archive = pack_bundle(folder, tmp_path / f"{version}.tar.gz")
                key = f"incident/{version}.tar.gz"
                client.put_object(Bucket="models", Key=key, Body=archive.read_bytes())
                bundles[version] = Bundle(version, f"s3://models/{key}", bundle_sha256(folder))
            cluster.apply(store.secret("model-store", ns))

            def manifest(bundle: Bundle) -> dict:
                md = st.model_deployment("s3", ns, bundle, st.canary(50), replicas=2)
                md["spec"]["model"]["s3"] = {
                    "endpoint": store.endpoint,
                    "credentialsSecret": "model-store",
                }
                return md

            cluster.apply(manifest(bundles["v1"]))
            st.wait_phase(stack, "s3", "Healthy", version="v1", timeout=240)
            with Traffic(st.answering_ip(stack, "s3"), rate=10, max_seconds=10) as traffic:
                time.sleep(5)
            assert set(traffic.tally.by_version) == {"v1"}
            assert_none_lost(traffic.tally)

            # A key that is not there: the candidate never gets ready, the reason names it.
            missing = Bundle("v2", "s3://models/incident/missing.tar.gz", bundles["v2"].sha256)
            cluster.apply(manifest(missing))

            # (While the canary's analysis waits, the status speaks of the analysis; the
            # init container's exit message is in the pod's status.)
            def reason() -> str | None:
                pods = cluster.kubectl_json(
                    "get", "pods", "-n", ns, "-l", "modeldeploy.io/slot=green"
                )
                for pod in pods["items"]:
                    for init in pod["status"].get("initContainerStatuses", []):
                        last = (init.get("lastState") or {}).get("terminated") or {}
                        text = str(last.get("message", ""))
                        if "no such key 'incident/missing.tar.gz'" in text and "404" in text:
                            return text
                return None

            st.wait("the 404 in the pod", reason, 120, detail=lambda: st.describe(stack, "s3"))
            assert st.status(stack, "s3")["stableVersion"] == "v1"

            # No secret anywhere the operator writes or a user reads.
            deployments = cluster.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout
            init = json.loads(deployments)["items"][0]["spec"]["template"]["spec"]
            env = init["initContainers"][0]["env"]
            assert all("valueFrom" in e and "value" not in e for e in env), env
            pods = cluster.kubectl("get", "pods", "-n", ns, "-o", "json").stdout
            events = cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
            mds = cluster.kubectl("get", "modeldeployments", "-n", ns, "-o", "json").stdout
            logs = cluster.kubectl(
                "logs",
                "-n",
                ns,
                "-l",
                "app.kubernetes.io/name=modeldeploy",
                "--tail=-1",
                check=False,
            ).stdout
            fetch_logs = cluster.kubectl(
                "logs",
                "-n",
                ns,
                "-l",
                "modeldeploy.io/name=s3",
                "-c",
                "fetch-bundle",
                "--tail=-1",
                check=False,
            ).stdout
            for text in (deployments, pods, events, mds, logs, fetch_logs):
                assert store.secret_key not in text
    finally:
        st.uninstall(stack)

"""An MLflow tracking server for the cluster's pods and its operator: ``mlflow server`` (from
this virtualenv, pinned 3.17.2) as a process in the node's network namespace, as Prometheus
and versitygw run, with a sqlite registry and its artifacts proxied to a versitygw bucket
(``e2e.s3store``). Pods, the operator and the tests reach it on the node's own address;
nothing outside the machine is reached.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from e2e.cluster import config
from e2e.daemon import stop, wait_answering
from e2e.s3store import S3Store, s3_store

PORT = 15000
S3_PORT = 17071  # not e2e.s3store's default: an S3 test may run its own store
BUCKET = "mlflow"
START_SECONDS = 120  # 12-15 s on an idle machine; the machine is shared


@dataclass(frozen=True)
class Registry:
    url: str  # http://NODE_IP:PORT, for pods, the operator and the tests alike
    log_path: Path
    store: S3Store | None = None  # its artifact store, where a test may keep other buckets

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def mlflow_registry(root: Path, port: int = PORT) -> Iterator[Registry]:
    """A fresh tracking server on ``NODE_IP:port`` (its store under ``root``)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    if not mlflow.is_file():
        raise RuntimeError(f"{mlflow} missing: pip install -e '.[test]' (it pins mlflow)")
    with s3_store(root / "s3", S3_PORT) as store:
        store.client().create_bucket(Bucket=BUCKET)
        url = f"http://{config.NODE_IP}:{port}"
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(root),
            "MLFLOW_S3_ENDPOINT_URL": store.endpoint,
            "AWS_ACCESS_KEY_ID": store.access_key,
            "AWS_SECRET_ACCESS_KEY": store.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        cmd = ["ip", "netns", "exec", config.NETNS, str(mlflow), "server"]
        cmd += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
        cmd += ["--artifacts-destination", f"s3://{BUCKET}/artifacts", "--serve-artifacts"]
        cmd += ["--host", config.NODE_IP, "--port", str(port), "--workers", "1"]
        cmd += ["--allowed-hosts", f"{config.NODE_IP}:{port}"]
        log_path = root / "mlflow.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_answering(proc, f"{url}/health", log_path, "mlflow server", START_SECONDS, 0.5)
            yield Registry(url, log_path, store)
        finally:
            stop(proc)

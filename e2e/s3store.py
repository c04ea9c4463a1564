"""An S3-compatible store for the cluster's pods: versitygw (built by the harness) as a
process in the node's network namespace, as Prometheus runs, listening on the node's own
address. Pods reach it there; the tests upload to it over the veth pair. Nothing outside the
machine is reached.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.cluster import config
from e2e.daemon import stop, wait_answering

PORT = 17070


def s3_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    """A botocore S3 client for an S3-compatible server on ``endpoint`` (path-style, the
    region every local server accepts), used by tests to create buckets and upload."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.Session().create_client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(region_name="us-east-1", s3={"addressing_style": "path"}),
    )


@dataclass
class S3Store:
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)

    def client(self) -> Any:
        return s3_client(self.endpoint, self.access_key, self.secret_key)

    def secret(self, name: str, namespace: str) -> dict[str, Any]:
        """The credentials Secret a ModelDeployment names (``credentialsSecret``)."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "stringData": {
                "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key,
            },
        }


@contextmanager
def s3_store(root: Path, port: int = PORT) -> Iterator[S3Store]:
    """versitygw on ``NODE_IP:port`` with a fresh root user and data folder under ``root``."""
    binary = config.Paths.default().versitygw()
    if not binary.is_file():
        raise RuntimeError(f"{binary} missing: run `.venv/bin/python -m e2e.cluster build`")
    (root / "data").mkdir(parents=True)
    (root / "meta").mkdir()
    access, secret = "modeldeploy-e2e", secrets.token_hex(20)
    endpoint = f"http://{config.NODE_IP}:{port}"
    cmd = ["ip", "netns", "exec", config.NETNS, str(binary), "--port", f"{config.NODE_IP}:{port}"]
    cmd += ["--health", "/health", "--quiet", "posix", "--sidecar", str(root / "meta")]
    cmd.append(str(root / "data"))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ROOT_ACCESS_KEY": access}
    env["ROOT_SECRET_KEY"] = secret
    log_path = root / "versitygw.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_answering(proc, f"{endpoint}/health", log_path, "versitygw in the node", 30)
        yield S3Store(endpoint, access, secret)
    finally:
        stop(proc, grace=10)

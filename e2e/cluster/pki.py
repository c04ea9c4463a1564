"""Certificates and keys of the cluster, made with the openssl command (no Python deps).

One CA signs every serving and client certificate; the client identities (CN = user,
O = groups) are what RBAC and the Node authorizer see. The service-account key pair signs
and verifies ServiceAccount tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .sh import run

DAYS = "30"


@dataclass(frozen=True)
class Cert:
    name: str
    cn: str
    orgs: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    usages: str = field(default="clientAuth")


def certificates() -> tuple[Cert, ...]:
    node = config.NODE_NAME
    return (
        Cert(
            "apiserver",
            "kube-apiserver",
            ips=(config.NODE_IP, "127.0.0.1", config.KUBERNETES_SERVICE_IP),
            dns=(
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
            ),
            usages="serverAuth",
        ),
        Cert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
        Cert("admin", "modeldeploy-admin", ("system:masters",)),
        Cert("controller-manager", "system:kube-controller-manager"),
        Cert("scheduler", "system:kube-scheduler"),
        Cert("kube-proxy", "system:kube-proxy"),
        Cert("kubelet", f"system:node:{node}", ("system:nodes",)),
        Cert("kubelet-serving", node, ips=(config.NODE_IP,), dns=(node,), usages="serverAuth"),
        Cert("prometheus", "modeldeploy:prometheus"),
    )


def make_pki(pki: Path) -> None:
    """Create whatever is missing; existing files are kept (a running cluster uses them)."""
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    ca_key, ca_crt = pki / "ca.key", pki / "ca.crt"
    if not ca_crt.exists():
        _key(ca_key)
        run(
            [
                "openssl",
                "req",
                "-x509",
                "-new",
                "-key",
                ca_key,
                "-sha256",
                "-days",
                DAYS,
                "-subj",
                "/CN=modeldeploy-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                ca_crt,
            ]
        )
    for cert in certificates():
        if not (pki / f"{cert.name}.crt").exists():
            _sign(pki, cert)
    sa_key, sa_pub = pki / "sa.key", pki / "sa.pub"
    if not sa_pub.exists():
        run(["openssl", "genrsa", "-out", sa_key, "2048"])
        run(["openssl", "rsa", "-in", sa_key, "-pubout", "-out", sa_pub])


def _key(path: Path) -> None:
    run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path])
    path.chmod(0o600)


def _subject(cert: Cert) -> str:
    return "".join(f"/O={o}" for o in cert.orgs) + f"/CN={cert.cn}"


def _sign(pki: Path, cert: Cert) -> None:
    key, csr, crt = pki / f"{cert.name}.key", pki / f"{cert.name}.csr", pki / f"{cert.name}.crt"
    _key(key)
    exts = [
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "-addext",
        f"extendedKeyUsage={cert.usages}",
    ]
    sans = [f"IP:{i}" for i in cert.ips] + [f"DNS:{d}" for d in cert.dns]
    if sans:
        exts += ["-addext", "subjectAltName=" + ",".join(sans)]
    run(["openssl", "req", "-new", "-key", key, "-subj", _subject(cert), *exts, "-out", csr])
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            pki / "ca.crt",
            "-CAkey",
            pki / "ca.key",
            "-CAcreateserial",
            "-days",
            DAYS,
            "-sha256",
            "-copy_extensions",
            "copyall",
            "-out",
            crt,
        ]
    )
    csr.unlink()

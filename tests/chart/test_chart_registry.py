"""The operator's own MLflow registry credentials and egress in the chart: secretKeyRefs on a
Secret in the release's namespace (optional keys, no RBAC for Secrets), none by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helmchart as hc
import pytest

from modeldeploy.server.contract import sources as src


def operator_env(manifests: list[hc.Manifest]) -> list[dict[str, Any]]:
    sts = hc.one(manifests, "StatefulSet")
    env: list[dict[str, Any]] = sts["spec"]["template"]["spec"]["containers"][0].get("env", [])
    return env


def egress_ports(manifests: list[hc.Manifest]) -> set[int]:
    np = hc.one(manifests, "NetworkPolicy")
    return {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}


def test_by_default_the_operator_has_no_registry_credentials_nor_egress(tmp_path: Path) -> None:
    manifests = hc.template({}, tmp_path)
    names = {e["name"] for e in operator_env(manifests)}
    assert not names & set(src.MLFLOW_CREDENTIAL_ENV)
    assert 5000 not in egress_ports(manifests)


def test_the_credentials_secret_becomes_optional_secret_refs(tmp_path: Path) -> None:
    values: dict[str, Any] = {
        "registry": {"credentialsSecret": "mlflow-operator"},
        "networkPolicy": {"registryPorts": [5000]},
    }
    manifests = hc.template(values, tmp_path)
    registry_env = [e for e in operator_env(manifests) if e["name"] in src.MLFLOW_CREDENTIAL_ENV]
    assert registry_env == [
        {
            "name": env,
            "valueFrom": {
                "secretKeyRef": {"name": "mlflow-operator", "key": env, "optional": True}
            },
        }
        for env in src.MLFLOW_CREDENTIAL_ENV
    ]
    assert 5000 in egress_ports(manifests)
    rules = [r for m in manifests if m["kind"] in ("ClusterRole", "Role") for r in m["rules"]]
    assert not any("secrets" in r.get("resources", []) for r in rules), "no RBAC for Secrets"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"registry": {"credentialsSecret": "Not_A_Name"}}, "/registry/credentialsSecret"),
        ({"registry": {"secret": "x"}}, "additional properties 'secret' not allowed"),
        ({"networkPolicy": {"registryPorts": [0]}}, "/networkPolicy/registryPorts/0"),
    ],
)
def test_schema_refuses_bad_registry_values(
    bad: dict[str, Any], message: str, tmp_path: Path
) -> None:
    proc = hc.lint(bad, tmp_path, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr

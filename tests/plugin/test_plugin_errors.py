"""The plugin's errors when there is no kubeconfig, context or cluster to talk to.

The unreachable cluster is a loopback port nothing listens on (the port of a socket bound
and closed again), so the connection is refused for real.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from modeldeploy.operator import plugin

ROOT = Path(__file__).resolve().parents[2]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubeconfig(tmp_path: Path, server: str, namespace: str = "ml") -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "local",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {"server": server, "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "me", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {
                        "name": "local",
                        "context": {"cluster": "local", "user": "me", "namespace": namespace},
                    }
                ],
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "churn"],
        ["status", "churn", "--watch"],
        ["history", "churn"],
        ["promote", "churn", "--full"],
        ["abort", "churn"],
    ],
)
def test_unreachable_cluster(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = f"https://127.0.0.1:{free_loopback_port()}"
    code = plugin.main([*argv, "--kubeconfig", str(kubeconfig(tmp_path, server))])
    err = capsys.readouterr().err
    assert code == plugin.EXIT_ERROR
    assert err == (
        f"error: cannot reach the Kubernetes API server at {server} (connection "
        f"refused); is the cluster up, and is the kubeconfig context (local) the "
        f"right one?\n"
    )


def test_missing_kubeconfig(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "config"
    assert plugin.main(["status", "churn", "--kubeconfig", str(missing)]) == plugin.EXIT_ERROR
    assert capsys.readouterr().err == (
        f"error: no kubeconfig at {missing}; set KUBECONFIG or pass --kubeconfig\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(missing))
    assert plugin.main(["history", "churn"]) == plugin.EXIT_ERROR
    assert f"no kubeconfig at {missing}" in capsys.readouterr().err


def test_unknown_context(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = kubeconfig(tmp_path, "https://127.0.0.1:1")
    assert (
        plugin.main(["status", "churn", "--kubeconfig", str(path), "--context", "prod"])
        == plugin.EXIT_ERROR
    )
    assert capsys.readouterr().err == (
        "error: context 'prod' is not in your kubeconfig; it has: local\n"
    )


def test_namespace_comes_from_the_flag_then_the_context(tmp_path: Path) -> None:
    path = str(kubeconfig(tmp_path, "https://127.0.0.1:1", namespace="team-a"))
    assert plugin.connect(path, None, None).namespace == "team-a"
    assert plugin.connect(path, None, "team-b").namespace == "team-b"


def test_console_script_is_declared_and_runs() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-modeldeploy"] == "modeldeploy.operator.plugin:main"
    proc = subprocess.run(
        [sys.executable, "-m", "modeldeploy.operator.plugin", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    for verb in ("status", "history", "promote", "abort", "retry", "pause", "resume"):
        assert verb in proc.stdout

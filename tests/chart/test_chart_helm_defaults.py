"""The harness's helm behaves like a released helm: `helm template` without --kube-version.

A helm built without its Makefile's ldflags assumes Kubernetes v1.20, which the chart's
`kubeVersion: >=1.28` refuses; a user's helm assumes the version of its client libraries.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from e2e.cluster.fixtures import harness_tool

CHART = Path(__file__).resolve().parents[2] / "charts" / "modeldeploy"


def test_helm_template_renders_without_kube_version() -> None:
    proc = subprocess.run(
        [harness_tool("helm"), "template", "md", str(CHART)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(proc.stdout) if doc}
    assert {"ServiceAccount", "StatefulSet"} <= kinds


def test_helm_assumes_the_kubernetes_of_its_client_libraries(tmp_path: Path) -> None:
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"
        'data: {kube: "{{ .Capabilities.KubeVersion.Version }}"}\n'
    )
    proc = subprocess.run(
        [harness_tool("helm"), "template", "p", str(chart)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    kube = yaml.safe_load(proc.stdout)["data"]["kube"]
    # helm v3.19 is built on client-go v0.34: it assumes Kubernetes v1.34, as released.
    assert kube == "v1.34.0"

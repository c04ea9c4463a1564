"""Run the real helm binary against charts/modeldeploy and read what it renders."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from e2e.cluster.config import K8S_VERSION
from e2e.cluster.fixtures import harness_tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modeldeploy"
# helm renders for the local cluster's Kubernetes version.
KUBE_VERSION = K8S_VERSION.lstrip("v")

Manifest = dict[str, Any]


def helm_path() -> str:
    """helm from the local cluster's pinned build."""
    return harness_tool("helm")


def _set_args(values: dict[str, Any] | None, tmp: Path | None) -> list[str]:
    if not values:
        return []
    assert tmp is not None, "values need a folder for the values file"
    path = tmp / f"values-{len(list(tmp.glob('values-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["--values", str(path)]


def helm(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_path(), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def lint(
    values: dict[str, Any] | None = None, tmp: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return helm(["lint", "--strict", str(CHART), *_set_args(values, tmp)], check=check)


def template(
    values: dict[str, Any] | None = None,
    tmp: Path | None = None,
    *,
    api_versions: Sequence[str] = (),
    release: str = "md",
    namespace: str = "modeldeploy-system",
    check: bool = True,
    include_crds: bool = False,
) -> list[Manifest]:
    """Render the chart and parse every document."""
    args = [
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *_set_args(values, tmp),
    ]
    for api in api_versions:
        args += ["--api-versions", api]
    if include_crds:
        args.append("--include-crds")
    out = helm(args, check=check).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: Sequence[Manifest], kind: str) -> Manifest:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]

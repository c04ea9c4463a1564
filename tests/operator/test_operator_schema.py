"""The CRD in crds/ is generated from modeldeploy.operator.schema and agrees with the parser."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from modeldeploy.operator import crdgen
from modeldeploy.operator import defaults as d
from modeldeploy.operator.engine import plan
from modeldeploy.operator.model import Spec, parse_duration
from modeldeploy.operator.schema import crd
from modeldeploy.operator.schema.openapi import DURATION_PATTERN

ROOT = Path(__file__).resolve().parents[2]


def test_crds_folder_is_not_stale() -> None:
    path = ROOT / "crds" / crdgen.FILE_NAME
    assert path.read_text() == crdgen.render(), "crds/ is stale: run `modeldeploy crds`"


def test_crds_command_writes_the_repositorys_crds_folder_and_the_charts_copy() -> None:
    assert crdgen.default_paths() == (
        ROOT / "crds" / crdgen.FILE_NAME,
        ROOT / "charts" / "modeldeploy" / "crds" / crdgen.FILE_NAME,
    )


def test_check_mode_detects_a_stale_file(tmp_path: Path) -> None:
    target = tmp_path / "crd.yaml"
    cmd = [sys.executable, "-m", "modeldeploy.operator.crdgen", "--output", str(target)]
    assert subprocess.run(cmd + ["--check"], capture_output=True).returncode == 1
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert subprocess.run(cmd + ["--check"], capture_output=True).returncode == 0
    target.write_text(target.read_text().replace("shortNames", "shortnames"))
    res = subprocess.run(cmd + ["--check"], capture_output=True, text=True)
    assert res.returncode == 1 and "stale" in res.stderr


def _version() -> dict:
    return yaml.safe_load(crdgen.render())["spec"]["versions"][0]


def test_crd_names_subresource_and_columns() -> None:
    obj = yaml.safe_load(crdgen.render())
    assert obj["metadata"]["name"] == "modeldeployments.modeldeploy.io"
    names = obj["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "ModelDeployment",
        "modeldeployments",
        ["md"],
    )
    version = _version()
    assert version["name"] == "v1alpha1" and set(version["subresources"]) == {"status", "scale"}
    assert version["subresources"]["status"] == {}
    cols = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert cols == ["Strategy", "Phase", "Stable", "Candidate", "Weight", "Age"]


def _walk_defaults(schema: dict, path: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, sub in (schema.get("properties") or {}).items():
        if "default" in sub:
            out[f"{path}{key}"] = sub["default"]
        out.update(_walk_defaults(sub, f"{path}{key}."))
    if "items" in schema:
        out.update(_walk_defaults(schema["items"], f"{path}[]."))
    return out


def _apply_defaults(schema: dict, value: object) -> object:
    """Structural defaulting as the apiserver does it (objects present get defaults)."""
    if not isinstance(value, dict):
        if isinstance(value, list) and "items" in schema:
            return [_apply_defaults(schema["items"], v) for v in value]
        return value
    out = dict(value)
    for key, sub in (schema.get("properties") or {}).items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if key in out:
            out[key] = _apply_defaults(sub, out[key])
    return out


def test_schema_defaults_match_what_the_parser_assumes() -> None:
    spec_schema = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    minimal = {
        "model": {"name": "iris", "version": "1", "bundleURI": "file:///b", "sha256": "0" * 64},
        "server": {"image": "img"},
        "strategy": {"blueGreen": {"prePromotionAnalysis": {}}},
    }
    defaulted = _apply_defaults(spec_schema, minimal)
    body = {"metadata": {"name": "x", "namespace": "y"}}
    a = Spec.from_body({**body, "spec": minimal})
    b = Spec.from_body({**body, "spec": defaulted})
    assert plan(a) == plan(b)
    assert replace(a, strategy_spec={}, analysis=replace(a.analysis, thresholds={})) == replace(
        b, strategy_spec={}, analysis=replace(b.analysis, thresholds={})
    )
    found = _walk_defaults(spec_schema)
    assert found["replicas"] == d.REPLICAS
    assert found["analysis.alerts"] == list(d.DEFAULT_ALERTS)
    assert found["trafficProvider"] == {"replicas": {}}


def test_every_duration_default_parses() -> None:
    import re

    found = _walk_defaults(_version()["schema"]["openAPIV3Schema"])
    durations = [v for v in found.values() if isinstance(v, str) and re.match(DURATION_PATTERN, v)]
    assert len(durations) >= 4
    assert all(parse_duration(v) > 0 for v in durations)


def test_status_schema_declares_every_field_the_engine_writes() -> None:
    from opworld import SHA_B, healthy, run_until, spec

    status_props = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"
    ]["properties"]
    world, status = healthy()
    seen = set(status.to_json())
    v2 = spec(version="v2", sha=SHA_B)
    status = run_until(
        world,
        v2,
        status,
        lambda s: s.promoted or s.paused or s.current_step == 4,
        control="pause/x",
    )
    seen |= set(status.to_json())
    status = run_until(world, v2, status, lambda s: s.phase == "Healthy", control="resume")
    seen |= set(status.to_json())
    assert seen - set(status_props) == set()

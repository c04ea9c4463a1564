"""gitops/argocd-health.lua against the sample ModelDeployments of gitops/health_test.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kstatus
import pytest
import yaml
from luahealth import GITOPS, HEALTH_LUA, health, to_lua

CASES: list[dict[str, Any]] = yaml.safe_load((GITOPS / "health_test.yaml").read_text())["tests"]
# What each Argo CD health means in kstatus terms (the two readings must agree).
KSTATUS_OF_HEALTH = {
    "Healthy": kstatus.CURRENT,
    "Progressing": kstatus.IN_PROGRESS,
    "Suspended": kstatus.IN_PROGRESS,
    "Degraded": kstatus.FAILED,
}


def _load(case: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load((GITOPS / case["inputPath"]).read_text())


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health(case: dict[str, Any]) -> None:
    assert health(_load(case)) == (case["healthStatus"]["status"], case["healthStatus"]["message"])


def test_every_phase_and_sample_is_covered() -> None:
    statuses = {c["healthStatus"]["status"] for c in CASES}
    assert statuses == {"Progressing", "Suspended", "Healthy", "Degraded"}
    phases = {(_load(c).get("status") or {}).get("phase") for c in CASES}
    assert phases >= {"Progressing", "Paused", "Healthy", "Degraded"}
    listed = {Path(c["inputPath"]).name for c in CASES}
    assert listed == {p.name for p in (GITOPS / "testdata").glob("*.yaml")}


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if "status" in _load(c)],
    ids=[Path(c["inputPath"]).stem for c in CASES if "status" in _load(c)],
)
def test_samples_are_kstatus_compatible(case: dict[str, Any]) -> None:
    obj = _load(case)
    assert kstatus.well_formed(obj) == []
    result, _ = kstatus.compute(obj)
    assert result == KSTATUS_OF_HEALTH[case["healthStatus"]["status"]]
    # Flux reads Ready beside kstatus: for a status of the current generation, it is True
    # exactly when the object is Current.
    if obj["status"].get("observedGeneration") == obj["metadata"]["generation"]:
        assert (kstatus.ready(obj) == "True") == (result == kstatus.CURRENT)


def test_kstatus_reading_follows_its_rules() -> None:
    base = {
        "kind": "ModelDeployment",
        "metadata": {"generation": 2},
        "status": {"observedGeneration": 2, "conditions": []},
    }

    def with_conds(**conds: str) -> dict[str, Any]:
        obj = yaml.safe_load(yaml.safe_dump(base))
        obj["status"]["conditions"] = [{"type": k, "status": v} for k, v in conds.items()]
        return obj

    assert kstatus.compute(with_conds())[0] == kstatus.CURRENT
    assert kstatus.compute(with_conds(Reconciling="True", Stalled="True"))[0] == kstatus.IN_PROGRESS
    assert kstatus.compute(with_conds(Stalled="True"))[0] == kstatus.FAILED
    stale = with_conds()
    stale["status"]["observedGeneration"] = 1
    assert kstatus.compute(stale)[0] == kstatus.IN_PROGRESS
    gone = with_conds()
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert kstatus.compute(gone)[0] == kstatus.TERMINATING


def test_lua_escapes_strings_exactly() -> None:
    tricky = 'quote " backslash \\ newline \n tab \t unicode é ✓'
    obj = {
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "phase": "Paused", "message": tricky},
    }
    assert health(obj) == ("Suspended", tricky)
    assert to_lua([1, 2.5, True, None]) == "{1, 2.5, true, nil}"


def test_script_stays_within_lua_5_1() -> None:
    """Argo CD embeds a Lua 5.1 interpreter: no syntax from 5.2 and later."""
    code = re.sub(r"--[^\n]*", "", HEALTH_LUA.read_text())
    for pattern, what in (
        (r"//", "integer division"),
        (r"\bgoto\b", "goto"),
        (r"<const>|<close>", "attributes"),
        (r"[^~=<>]=?[&|]|<<|>>", "bitwise"),
        (r"\\u\{", "utf-8 escapes"),
        (r"\butf8\.", "utf8 library"),
        (r"\btable\.(move|unpack)\b", "5.2+ table functions"),
    ):
        assert not re.search(pattern, code), what

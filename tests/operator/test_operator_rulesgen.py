"""The chart's rule file and the README's PromQL are generated from the server's contract
(``modeldeploy rules``) and checked stale, as the CRD is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.operator import rulesgen
from modeldeploy.server.contract import promql, rules

ROOT = Path(__file__).resolve().parents[2]
CHART_RULES = ROOT / rulesgen.CHART_RULES


def test_chart_rules_file_is_not_stale() -> None:
    assert CHART_RULES.read_text() == rulesgen.render_chart(), (
        f"{rulesgen.CHART_RULES} is stale: run `modeldeploy rules`"
    )


def test_readme_promql_is_not_stale() -> None:
    text = (ROOT / "README.md").read_text()
    assert rulesgen.update_readme(text) == text, "README.md is stale: run `modeldeploy rules`"


def test_rules_command_writes_the_repositorys_files() -> None:
    assert rulesgen.repository_root() == ROOT


def test_check_mode_detects_a_stale_file(tmp_path: Path) -> None:
    target = tmp_path / "rules.yaml"
    cmd = [sys.executable, "-m", "modeldeploy.operator.rulesgen", "--output", str(target)]
    assert subprocess.run(cmd + ["--check"], capture_output=True).returncode == 1
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert subprocess.run(cmd + ["--check"], capture_output=True).returncode == 0
    target.write_text(target.read_text().replace("> 0.25", "> 0.3"))
    res = subprocess.run(cmd + ["--check"], capture_output=True, text=True)
    assert res.returncode == 1 and "stale" in res.stderr
    # The committed files, through the command users run.
    res = subprocess.run(
        [sys.executable, "-m", "modeldeploy.operator.rulesgen", "--check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr


def test_readme_update_rejects_unknown_and_missing_blocks() -> None:
    blocks = "".join(f"<!-- promql: {n} -->\n```promql\nold\n```\n" for n in promql.README_BLOCKS)
    assert "old" not in rulesgen.update_readme(blocks)
    with pytest.raises(ValueError, match="no promql block for ks"):
        rulesgen.update_readme(blocks.replace("promql: ks -->", "ks -->"))
    with pytest.raises(ValueError, match="unknown promql block 'nope'"):
        rulesgen.update_readme(blocks + "<!-- promql: nope -->\n```promql\nx\n```\n")


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"thresholds": rules.Thresholds(0.1, 3.5, 0.015, 0.25), "interval": "5s", "hold": "2m"},
    ],
)
def test_rendered_yaml_reads_back_as_the_rules(kw: dict[str, Any]) -> None:
    text = rulesgen.render_chart(**kw)
    groups = rules.chart_groups(
        kw.get("thresholds", rules.DEFAULT_THRESHOLDS),
        interval=kw.get("interval", rules.DEFAULT_INTERVAL),
        hold=kw.get("hold"),
    )
    assert yaml.safe_load(text) == {"groups": [g.as_dict() for g in groups]}
    assert text.startswith(rulesgen.HEADER)
    # Every rule is explained where users read it.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("- record:", "- alert:")) and "p50" not in line:
            assert lines[i - 1].lstrip().startswith("#"), line


def test_per_modeldeployment_rules_render_and_read_back() -> None:
    groups = rules.modeldeployment_groups("ml", "iris", labels={"x": "y"})
    assert yaml.safe_load(rulesgen.render_groups(groups)) == {
        "groups": [g.as_dict() for g in groups]
    }


def test_fast_e2e_rules_are_the_generated_variant() -> None:
    """e2e shortens the chart file's intervals and `for`s by text; the generator agrees."""
    from e2e import stack

    fast = stack.fast_rules(rulesgen.render_chart())
    assert fast == rulesgen.render_chart(interval=stack.GROUP_INTERVAL, hold=stack.ALERT_FOR)

"""The README's "Deploy your own model" walkthrough runs as written: its Python blocks, in
order, in one namespace, in a fresh folder (they start a real server on port 8094)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough_blocks() -> list[str]:
    text = README.read_text()
    start = text.index("\n## Deploy your own model\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_walkthrough_has_its_steps() -> None:
    blocks = walkthrough_blocks()
    assert len(blocks) == 4
    assert "bundle_model(" in blocks[1] and "gate.run(" in blocks[3]


def test_the_walkthrough_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "walkthrough"}
    for i, block in enumerate(walkthrough_blocks()):
        exec(compile(block, f"README walkthrough block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "verdict: PROMOTE" in out
    assert os.path.exists("cancer-1.tar.gz") and os.path.exists("cancer-2.tar.gz")
    card = namespace["card"]
    assert card.output.classes == ("benign", "malignant")  # type: ignore[attr-defined]
    assert card.evaluation["subgroup_column"] == "size band"  # type: ignore[attr-defined]


def test_the_walkthrough_shell_commands_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `modeldeploy bundle/card/digest` block, on the files it names (written here from
    the notebook's objects, as the text says: joblib.dump, Parquet, CARD.yaml)."""
    import shlex

    import joblib
    import yaml

    from modeldeploy.cli import main

    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "walkthrough"}
    blocks = walkthrough_blocks()
    exec(compile(blocks[0], "README walkthrough block 1", "exec"), namespace)
    joblib.dump(namespace["pipeline"], "model.joblib")
    namespace["train"].to_parquet("train.parquet")  # type: ignore[attr-defined]
    namespace["test"].to_parquet("test.parquet")  # type: ignore[attr-defined]
    card_mapping = re.search(r"card=(\{.*?\n    \}),", blocks[1], flags=re.S)
    assert card_mapping is not None
    Path("CARD.yaml").write_text(yaml.safe_dump(eval(card_mapping.group(1))))
    text = README.read_text()
    section = text[text.index("\n## Deploy your own model\n") :]
    shell = next(b for b in re.findall(r"```bash\n(.*?)```", section, re.S) if "bundle" in b)
    commands = [
        shlex.split(line, comments=True) for line in shell.replace("\\\n", " ").splitlines()
    ]
    digests = []
    for command in commands:
        assert command[0] == "modeldeploy"
        assert main(command[1:]) == 0, command
        digests.append(capsys.readouterr().out)
    assert digests[0].strip() == digests[2].strip() and "## Evaluation" in digests[1]

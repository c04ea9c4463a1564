"""The repository's layout keeps out of Python's way (DESIGN.md, "Layout").

A root folder that is a regular package named like a standard-library module shadows that
module whenever the root is on ``sys.path`` (``python -m ...`` from the root does that).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = {
    "modeldeploy": ROOT / "modeldeploy",
    "modeldeploy.operator": ROOT / "operator/src/modeldeploy/operator",
    "modeldeploy.server": ROOT / "server/src/modeldeploy/server",
}


def test_no_root_folder_shadows_the_standard_library() -> None:
    shadowing = [
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and p.name in sys.stdlib_module_names and (p / "__init__.py").exists()
    ]
    assert shadowing == []


def test_python_dash_m_from_the_root_sees_the_standard_library() -> None:
    # `python -m` puts the current folder first on sys.path, as a contributor's shell does.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert str(ROOT) not in proc.stdout


def test_pyproject_lists_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {
        name: str(path.relative_to(ROOT)) for name, path in SOURCE_ROOTS.items()
    }
    found = {"modeldeploy"}
    for name, path in SOURCE_ROOTS.items():
        for init in path.rglob("__init__.py"):
            rel = init.parent.relative_to(path).parts
            found.add(".".join((name, *rel)))
    assert sorted(config["packages"]) == sorted(found)


def test_no_startup_hook_in_the_environment() -> None:
    site = Path(sys.prefix)
    hooks = [
        p.name for p in site.glob("lib/python3*/site-packages/*.pth") if "operator" in p.read_text()
    ]
    assert hooks == []

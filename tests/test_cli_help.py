"""Every ``modeldeploy`` subcommand's ``--help`` renders: it says what the command does, and
no formatting escape (a doubled ``%``, an unfilled ``%(default)s``) leaks into the text."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from modeldeploy.cli import build_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_renders_cleanly(name: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        build_parser().parse_args([name, "--help"])
    assert done.value.code == 0
    text = out.getvalue()
    assert text.startswith(f"usage: modeldeploy {name}"), text[:80]
    assert "%%" not in text and "%(" not in text, text
    assert len(text.splitlines()) > 3, text


def test_the_operator_image_cli_needs_none_of_the_server_libraries() -> None:
    """The operator image has no joblib, scikit-learn, FastAPI, numpy or skops: the
    ``modeldeploy`` parser (every subcommand's module is imported to build it) must not
    import them (a top-level ``import joblib`` once crash-looped the operator pod)."""
    import subprocess
    import sys

    blocked = ("joblib", "sklearn", "fastapi", "uvicorn", "scipy", "pandas", "numpy", "skops")
    script = (
        "import sys\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        "from modeldeploy.cli import build_parser\n"
        "build_parser().parse_args(['operator', '--help'])\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "usage: modeldeploy operator" in res.stdout

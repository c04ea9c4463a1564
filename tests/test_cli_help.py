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

"""Subcommands of the server half: serve, example-bundle, gate.

Registered without importing FastAPI or scikit-learn; each command imports what it needs
when it runs.
"""

from __future__ import annotations

import argparse


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the server's subcommands to the ``modeldeploy`` parser."""

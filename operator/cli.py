"""Subcommands of the operator half: operator.

Registered without importing kopf or the Kubernetes client.
"""

from __future__ import annotations

import argparse


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the operator's subcommands to the ``modeldeploy`` parser."""

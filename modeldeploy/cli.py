"""The ``modeldeploy`` command: one entry point, subcommands from each half.

Each half registers its subcommands without importing its heavy dependencies, so the
server image (no kopf) and the operator image (no scikit-learn) both run this same
command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from modeldeploy.server import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeldeploy",
        description="Safe rollouts of machine-learning models on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"modeldeploy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from modeldeploy.server import cli as server_cli

    server_cli.register(commands)
    from modeldeploy.server import fetch as fetch_cli

    fetch_cli.register(commands)
    from modeldeploy.server import register as register_cli

    register_cli.add_parser(commands)
    try:
        from modeldeploy.operator import cli as operator_cli
    except ImportError:  # pragma: no cover - the operator half is optional in an install
        pass
    else:
        operator_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result = args.run(args)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""`python -m e2e.cluster build|up|down|status|env`: the local cluster by hand."""

from __future__ import annotations

import argparse
import sys

from .config import Paths
from .sh import locked


def _build(args: argparse.Namespace) -> int:
    from .build import build_all

    paths = Paths.default()
    with locked(paths.lock):
        build_all(
            paths, only=tuple(args.only or ()), nice=args.nice, binaries_only=args.binaries_only
        )
    return 0


def _up(args: argparse.Namespace) -> int:
    from .lifecycle import up

    paths = Paths.default()
    with locked(paths.lock):
        up(paths)
        if args.fake_node:
            from .fakenode import ensure

            ensure(paths)
    return 0


def _down(args: argparse.Namespace) -> int:
    from .lifecycle import down

    paths = Paths.default()
    with locked(paths.lock):
        down(paths)
    return 0


def _status(args: argparse.Namespace) -> int:
    from .lifecycle import status

    report = status(Paths.default())
    for line in report.lines():
        print(line)
    return 0 if report.healthy else 1


def _env(args: argparse.Namespace) -> int:
    from .lifecycle import env_exports

    print(env_exports(Paths.default()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build binaries and images (cached)")
    b.add_argument(
        "--only",
        action="append",
        choices=["kubernetes", "etcd", "prometheus", "helm", "versitygw", "kwok", "traefik"],
        help="build only these Go targets (repeatable); kwok (the scale benchmark) and "
        "traefik (the gateway tests, with its image) are built only so, or by their tests",
    )
    b.add_argument("--binaries-only", action="store_true", help="skip the images")
    b.add_argument("--nice", action="store_true", help="run Go builds at the lowest priority")
    b.set_defaults(run=_build)
    u = sub.add_parser("up", help="start the cluster (reuses a healthy one)")
    u.add_argument(
        "--fake-node",
        action="store_true",
        help="also run kwok and its fake node (for the operator's scale benchmark)",
    )
    u.set_defaults(run=_up)
    sub.add_parser("down", help="stop it and undo every change").set_defaults(run=_down)
    sub.add_parser("status", help="what runs; exit 1 unless healthy").set_defaults(run=_status)
    sub.add_parser("env", help="shell export lines for KUBECONFIG, PATH, ...").set_defaults(
        run=_env
    )
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())

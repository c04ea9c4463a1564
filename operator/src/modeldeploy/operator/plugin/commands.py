"""The plugin's command line: the parser, one function per command, and ``main``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from modeldeploy.operator import defaults as d
from modeldeploy.operator.plugin.cluster import (
    Cluster,
    connect,
    explain,
    fetch,
    fetch_events,
    request_control,
)
from modeldeploy.operator.plugin.views import PluginError, render_history, render_status

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _status(cluster: Cluster, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    while True:
        now = datetime.now(UTC)
        text = render_status(fetch(cluster, args.name), fetch_events(cluster, args.name), now)
        if not args.watch:
            out(text)
            return EXIT_OK
        out(f"{clear}{text}" if clear else f"--- {now.strftime('%H:%M:%S')}\n{text}")
        time.sleep(args.interval)


def _history(cluster: Cluster, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    out(render_history(fetch(cluster, args.name)))
    return EXIT_OK


def _control(cluster: Cluster, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    verb = "promote-full" if args.command == "promote" and args.full else args.command
    value = request_control(cluster, args.name, verb)
    out(
        f"{args.name}: {verb} requested ({d.ANNOTATION_CONTROL}={value}); "
        f"follow it with: kubectl modeldeploy status {args.name} --watch\n"
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl modeldeploy", description="Watch and steer modeldeploy.io ModelDeployments."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("name", help="the ModelDeployment")
    common.add_argument("-n", "--namespace", help="default: the kubeconfig context's")
    common.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    common.add_argument("--context", help="default: the current context")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser(
        "status", parents=[common], help="phase, slots, weight, step, analysis and recent events"
    )
    status.add_argument("-w", "--watch", action="store_true", help="redraw until Ctrl-C")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between redraws")
    status.set_defaults(run=_status)
    sub.add_parser(
        "history", parents=[common], help="past rollouts and their outcome"
    ).set_defaults(run=_history)
    promote = sub.add_parser(
        "promote", parents=[common], help="go to the next step (--full: straight to 100%%)"
    )
    promote.add_argument("--full", action="store_true", help="skip the remaining steps")
    promote.set_defaults(run=_control)
    for verb, text in (
        ("abort", "roll the candidate back now"),
        ("retry", "roll out the rolled-back version again"),
        ("pause", "hold the rollout where it is"),
        ("resume", "continue a paused rollout"),
        ("retrain", "start a retraining run now (spec.retrain; within its cooldown and limits)"),
    ):
        sub.add_parser(verb, parents=[common], help=text).set_defaults(run=_control)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kubectl-modeldeploy``; returns the exit status."""
    args = build_parser().parse_args(argv)

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    cluster: Cluster | None = None
    try:
        cluster = connect(args.kubeconfig, args.context, args.namespace)
        return int(args.run(cluster, args, out))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every failure becomes one readable line
        error = (
            exc
            if cluster is None or isinstance(exc, PluginError)
            else explain(exc, cluster, args.name)
        )
        if not isinstance(error, PluginError):
            raise
        sys.stderr.write(f"error: {error}\n")
        return EXIT_ERROR

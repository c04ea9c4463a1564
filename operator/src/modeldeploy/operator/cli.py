"""Subcommands of the operator half: operator, crds, rules.

Registered without importing kopf or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import os

from modeldeploy.operator import defaults as d

OPERATOR_HELP = """\
Run the ModelDeployment rollout operator (kopf underneath) with the current kubeconfig, or
the in-cluster service account. It watches ModelDeployments (modeldeploy.io/v1alpha1) and
their Deployments and Pods, rolls new model versions out by their strategy, asks Prometheus
once per --analysis-interval which alerts fire, which alerting rules are loaded and healthy,
what it scrapes and how many predictions each version served, reads the firing alerts alone
every --alerts-interval (a firing alert rolls back within seconds), and writes every step
to .status.

Controls: kubectl annotate md NAME modeldeploy.io/control=pause|resume|promote|promote-full|
abort|retry --overwrite (a value is applied once; add a suffix such as promote/2 to repeat).

Two replicas: give each --peering NAME and a different --priority; the highest acts, the
other waits and takes over when it goes away (needs kopf's peering CRDs and a
KopfPeering object NAME in the namespace, or a ClusterKopfPeering with --all-namespaces).

models:/ bundle URIs are resolved against spec.model.mlflow.trackingURI with the operator's
own credentials, from $MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD or
$MLFLOW_TRACKING_TOKEN (the chart's registry.credentialsSecret); it never reads a Secret.
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the operator's subcommands to the ``modeldeploy`` parser."""
    op = commands.add_parser(
        "operator",
        help="run the rollout operator",
        description=OPERATOR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = op.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        dest="namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable)",
    )
    scope.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="watch every namespace (the default when no --namespace)",
    )
    op.add_argument(
        "--prometheus-url",
        default=os.environ.get("MODELDEPLOY_PROMETHEUS_URL", ""),
        metavar="URL",
        help="Prometheus for analysis unless a ModelDeployment "
        "sets spec.analysis.prometheusURL "
        "(env MODELDEPLOY_PROMETHEUS_URL)",
    )
    op.add_argument(
        "--server-image",
        default=os.environ.get("MODELDEPLOY_SERVER_IMAGE", ""),
        metavar="IMAGE",
        help="model server image when spec.server.image is empty (env MODELDEPLOY_SERVER_IMAGE)",
    )
    op.add_argument(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        help="kubeconfig (default: in-cluster, then $KUBECONFIG or ~/.kube/config)",
    )
    op.add_argument(
        "--resync-seconds",
        type=float,
        default=5.0,
        metavar="S",
        help="reconcile every ModelDeployment at least this often (default 5)",
    )
    op.add_argument(
        "--analysis-interval",
        type=float,
        default=d.FULL_POLL_SECONDS,
        metavar="S",
        help=f"period of the full batched Prometheus poll, four requests per Prometheus "
        f"whatever the number of ModelDeployments (default {d.FULL_POLL_SECONDS:g}; shorter "
        "than any spec.analysis.interval, so that the samples of many rollouts come due at "
        "different polls)",
    )
    op.add_argument(
        "--alerts-interval",
        type=float,
        default=1.0,
        metavar="S",
        help="period of the firing-alerts poll that triggers rollbacks (default 1)",
    )
    op.add_argument(
        "--metrics-port",
        type=int,
        default=9102,
        metavar="PORT",
        help="serve the operator's metrics on this port; 0 to disable (default 9102)",
    )
    op.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        metavar="URL",
        help="liveness endpoint (default http://0.0.0.0:8081/healthz); '' disables",
    )
    op.add_argument(
        "--peering",
        default=None,
        metavar="NAME",
        help="peer with other replicas under this name (default: standalone)",
    )
    op.add_argument(
        "--priority", type=int, default=0, help="peering priority; the highest acts (default 0)"
    )
    op.add_argument(
        "--peering-lifetime",
        type=int,
        default=20,
        metavar="S",
        help="seconds after which a silent peer counts as gone, i.e. the "
        "fail-over time (default 20)",
    )
    op.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    op.set_defaults(run=run_operator)

    crds = commands.add_parser("crds", help="write (or --check) crds/ from the CRD schema")
    from modeldeploy.operator import crdgen

    crdgen.add_arguments(crds)
    crds.set_defaults(run=crdgen.run)

    from modeldeploy.operator import rulesgen

    rulesgen.register(commands)


def run_operator(args: argparse.Namespace) -> int:
    import asyncio

    import kopf

    from modeldeploy.operator.handlers import build_registry
    from modeldeploy.operator.kube import ApiClientKube
    from modeldeploy.operator.metrics import OperatorMetrics
    from modeldeploy.operator.process import configure_logging
    from modeldeploy.operator.runtime import Config, Runtime

    configure_logging(args.log_level)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf's own login reads it too
    config = Config(
        namespaces=tuple(args.namespaces),
        all_namespaces=args.all_namespaces or not args.namespaces,
        prometheus_url=args.prometheus_url,
        server_image=args.server_image,
        resync_seconds=args.resync_seconds,
        analysis_interval=args.analysis_interval,
        alerts_interval=args.alerts_interval,
        metrics_port=args.metrics_port,
        liveness_endpoint=args.liveness,
        peering=args.peering,
        priority=args.priority,
        peering_lifetime=args.peering_lifetime,
        kubeconfig=args.kubeconfig,
    )
    alerted: set[tuple[str, str]] = set()  # their client calls go first (lanes.Lanes)
    kube = ApiClientKube.from_environment(args.kubeconfig, hurried=alerted)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runtime = Runtime(config=config, kube=kube, metrics=OperatorMetrics.create(), alerted=alerted)
    registry = build_registry(runtime)
    kopf.run(
        loop=loop,
        registry=registry,
        clusterwide=config.all_namespaces,
        namespaces=config.namespaces,
        standalone=config.peering is None,
        peering_name=config.peering,
        priority=config.priority,
        liveness_endpoint=config.liveness_endpoint or None,
    )
    return 0

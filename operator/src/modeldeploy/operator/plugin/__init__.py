"""``kubectl modeldeploy``: watch and steer ModelDeployments from a terminal.

Installed as the console script ``kubectl-modeldeploy``, so kubectl finds it as a plugin:

    kubectl modeldeploy status NAME [--watch] [-n NS]
    kubectl modeldeploy promote NAME [--full] | abort NAME | retry NAME | pause NAME | resume NAME
    kubectl modeldeploy retrain NAME  (spec.retrain: a run now; promote approves a manual one)
    kubectl modeldeploy history NAME

Controls are the ``modeldeploy.io/control`` annotation the operator reads. The operator acts
on a value once (it remembers the last one), so each request carries a fresh suffix:
``promote/20261123T090102-3fa2``.

The views are pure functions of the object and its events (``render_status``,
``render_history``) so they are tested without a cluster; the rest is a thin layer over the
Kubernetes client that turns its failures into messages saying what to do.

Modules: ``views`` (the pure side), ``cluster`` (the client calls and their errors) and
``commands`` (the parser and ``main``); this package re-exports their public names.
"""

from modeldeploy.operator.plugin.cluster import (
    REQUEST_TIMEOUT,
    Cluster,
    api_installed,
    connect,
    explain,
    fetch,
    fetch_events,
    missing_api,
    request_control,
)
from modeldeploy.operator.plugin.commands import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    build_parser,
    main,
)
from modeldeploy.operator.plugin.views import (
    BAR_WIDTH,
    CONDITION_ORDER,
    EVENTS_SHOWN,
    NEEDS_ROLLBACK,
    NEEDS_ROLLOUT,
    Json,
    PluginError,
    age,
    check_control,
    control_value,
    duration,
    parse_time,
    render_history,
    render_status,
    table,
    weight_bar,
)

__all__ = [
    "BAR_WIDTH",
    "CONDITION_ORDER",
    "EVENTS_SHOWN",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "NEEDS_ROLLBACK",
    "NEEDS_ROLLOUT",
    "REQUEST_TIMEOUT",
    "Cluster",
    "Json",
    "PluginError",
    "age",
    "api_installed",
    "build_parser",
    "check_control",
    "connect",
    "control_value",
    "duration",
    "explain",
    "fetch",
    "fetch_events",
    "main",
    "missing_api",
    "parse_time",
    "render_history",
    "render_status",
    "request_control",
    "table",
    "weight_bar",
]

"""``kubectl modeldeploy``: watch and steer ModelDeployments from a terminal.

Installed as the console script ``kubectl-modeldeploy``, so kubectl finds it as a plugin:

    kubectl modeldeploy status NAME [--watch] [-n NS]
    kubectl modeldeploy promote NAME [--full] | abort NAME | retry NAME | pause NAME | resume NAME
    kubectl modeldeploy history NAME

Controls are the ``modeldeploy.io/control`` annotation the operator reads. The operator acts
on a value once (it remembers the last one), so each request carries a fresh suffix:
``promote/20261123T090102-3fa2``.

The views are pure functions of the object and its events (``render_status``,
``render_history``) so they are tested without a cluster; the rest is a thin layer over the
Kubernetes client that turns its failures into messages saying what to do.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modeldeploy.operator import defaults as d

Json = dict[str, Any]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
REQUEST_TIMEOUT = (5, 30)  # seconds: connect, read
EVENTS_SHOWN = 8
BAR_WIDTH = 40
CONDITION_ORDER = ("Ready", "Progressing", "Degraded", "Reconciling", "Stalled")
# Controls that need a rollout in progress, and the one that needs a rolled-back version.
NEEDS_ROLLOUT = ("promote", "promote-full", "abort")
NEEDS_ROLLBACK = ("retry",)


class PluginError(Exception):
    """A failure explained for the person at the terminal; printed without a traceback."""


# --- pure helpers: time, tables --------------------------------------------------------


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp as the apiserver writes it, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(text: str | None, now: datetime) -> str:
    """How long ago, kubectl style: 45s, 12m, 3h, 5d; '-' when unknown."""
    at = parse_time(text)
    if at is None:
        return "-"
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(start: str | None, end: str | None) -> str:
    """Length of an interval as 1h2m3s ('-' when either end is unknown)."""
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return "-"
    seconds = max(0, int((b - a).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or hours else "") + f"{secs}s"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns, the last one unpadded (kubectl's layout)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [str(row[-1])]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def weight_bar(weight: int, width: int = BAR_WIDTH) -> str:
    """The candidate's share of the traffic as a bar: [#####...............]."""
    weight = min(100, max(0, weight))
    filled = round(width * weight / 100)
    return "[" + "#" * filled + "." * (width - filled) + "]"


# --- pure views ---------------------------------------------------------------------------


def _slot_rows(status: Json) -> list[list[str]]:
    stable = status.get("stableSlot")
    candidate = status.get("candidateSlot")
    previous = status.get("previousSlot")
    rows = []
    for slot in d.SLOTS:
        record = (status.get("slots") or {}).get(slot) or {}
        if slot == stable:
            role, version = d.ROLE_STABLE, status.get("stableVersion") or record.get("version")
        elif slot == candidate:
            role = d.ROLE_CANDIDATE
            version = status.get("candidateVersion") or record.get("version")
        elif slot == previous:
            role, version = d.ROLE_PREVIOUS, record.get("version")
        else:
            role, version = "-", record.get("version")
        if not record and role == "-":
            continue
        rows.append([slot, role, version or "-", record.get("revision") or "-"])
    return rows


def _condition_line(status: Json) -> str:
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    parts = []
    for kind in [*CONDITION_ORDER, *sorted(set(conds) - set(CONDITION_ORDER))]:
        if kind in conds:
            c = conds[kind]
            reason = f" ({c['reason']})" if c.get("reason") else ""
            parts.append(f"{kind}={c.get('status', '?')}{reason}")
    return "  ".join(parts) if parts else "-"


def _event_time(event: Json) -> str:
    return (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def render_status(obj: Json, events: Sequence[Json], now: datetime) -> str:
    """The status view of one ModelDeployment: what ``status`` prints (and redraws)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    strategy = status.get("strategy") or next(iter(spec.get("strategy") or {}), "-")
    lines = [
        f"ModelDeployment {meta.get('namespace', '-')}/{meta.get('name', '-')}"
        f"   strategy {strategy}   model {(spec.get('model') or {}).get('name', '-')}"
    ]
    if not status:
        lines.append("Phase:       (no status yet: is the operator running?)")
        return "\n".join(lines) + "\n"
    phase = status.get("phase", "-")
    message = f"  {status['message']}" if status.get("message") else ""
    lines.append(f"Phase:       {phase}{message}")
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        lines.append(f"Generation:  {generation} (the operator has seen {observed}: catching up)")
    lines.append(
        f"Stable:      {status.get('stableVersion', '-')} in slot {status.get('stableSlot', '-')}"
    )
    if status.get("candidateVersion"):
        weight = int(status.get("canaryWeight") or 0)
        lines.append(
            f"Candidate:   {status['candidateVersion']} in slot {status.get('candidateSlot', '-')}"
        )
        lines.append(f"Weight:      {weight_bar(weight)} {weight}% to the candidate")
        lines.append(
            f"Step:        {status.get('currentStep', 0)}"
            + (
                f" (started {age(status.get('stepStartedAt'), now)} ago)"
                if status.get("stepStartedAt")
                else ""
            )
            + ("  PAUSED" if status.get("paused") else "")
        )
    lines.append(f"Conditions:  {_condition_line(status)}")
    slots = _slot_rows(status)
    if slots:
        lines += ["", *table(["SLOT", "ROLE", "VERSION", "REVISION"], slots)]
    analysis = status.get("analysis") or {}
    if analysis:
        lines += [
            "",
            f"Analysis:    {analysis.get('outcome', '-')} "
            f"{age(analysis.get('lastSampleAt'), now)} ago"
            + (
                f", {analysis['passedSamples']} passed in a row"
                if analysis.get("passedSamples")
                else ""
            )
            + (f": {analysis['message']}" if analysis.get("message") else ""),
        ]
        results = analysis.get("results") or []
        if results:
            lines += table(
                ["KIND", "NAME", "VALUE", "OUTCOME", "AGE"],
                [
                    [
                        r.get("kind", "-"),
                        r.get("name", "-"),
                        r.get("value") or "-",
                        r.get("outcome", "-"),
                        age(r.get("at"), now),
                    ]
                    for r in results
                ],
                indent="  ",
            )
    last = (status.get("history") or [None])[0]
    if last:
        lines += [
            "",
            f"Last rollout: {last.get('version', '-')} {last.get('outcome', '-')}"
            f" {age(last.get('finishedAt'), now)} ago"
            + (f" ({last['reason']}: {last['message']})" if last.get("message") else ""),
        ]
    recent = sorted(events, key=_event_time)[-EVENTS_SHOWN:]
    if recent:
        lines += ["", "Events:"]
        lines += table(
            ["AGE", "TYPE", "REASON", "MESSAGE"],
            [
                [
                    age(_event_time(e), now),
                    e.get("type", "-"),
                    e.get("reason", "-"),
                    (e.get("message") or "").replace("\n", " "),
                ]
                for e in recent
            ],
            indent="  ",
        )
    return "\n".join(lines) + "\n"


def render_history(obj: Json) -> str:
    """The rollouts the status remembers, newest first."""
    history = (obj.get("status") or {}).get("history") or []
    name = (obj.get("metadata") or {}).get("name", "-")
    if not history:
        return f"{name}: no rollouts recorded yet\n"
    rows = [
        [
            h.get("version", "-"),
            h.get("outcome", "-"),
            h.get("reason", "-"),
            h.get("startedAt", "-"),
            duration(h.get("startedAt"), h.get("finishedAt")),
            h.get("message", ""),
        ]
        for h in history
    ]
    return (
        "\n".join(table(["VERSION", "OUTCOME", "REASON", "STARTED", "TOOK", "MESSAGE"], rows))
        + "\n"
    )


def control_value(verb: str, now: datetime, nonce: str) -> str:
    """The annotation value of one control request (unique, so the operator acts on it)."""
    if verb not in d.CONTROLS:
        raise ValueError(f"unknown control {verb!r}")
    return f"{verb}/{now.strftime('%Y%m%dT%H%M%S')}-{nonce}"


def check_control(verb: str, obj: Json) -> None:
    """Refuse a control that cannot apply now, saying why (the operator would ignore it)."""
    status = obj.get("status") or {}
    name = (obj.get("metadata") or {}).get("name", "")
    if verb in NEEDS_ROLLOUT and not status.get("candidateVersion"):
        raise PluginError(
            f"{name}: no rollout in progress (stable "
            f"{status.get('stableVersion', '-')}, phase {status.get('phase', '-')})"
            f": nothing to {verb}"
        )
    if verb in NEEDS_ROLLBACK and not status.get("abortedRevision"):
        raise PluginError(f"{name}: nothing to retry: no rolled-back version")


# --- the Kubernetes side --------------------------------------------------------------------


@dataclass
class Cluster:
    """The API clients of the current (or a chosen) kubeconfig context."""

    custom: Any
    core: Any
    host: str
    namespace: str
    context: str


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
    """Clients for the kubeconfig's context; a PluginError when there is no usable config."""
    from kubernetes import client, config  # lazy: the views need no client
    from kubernetes.config.config_exception import ConfigException

    paths = [kubeconfig] if kubeconfig else os.environ.get("KUBECONFIG", "").split(os.pathsep)
    paths = [p for p in paths if p] or [os.path.expanduser("~/.kube/config")]
    if not any(os.path.exists(p) for p in paths):
        raise PluginError(
            f"no kubeconfig at {os.pathsep.join(paths)}; set KUBECONFIG or pass --kubeconfig"
        )
    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        chosen = next((c for c in contexts if c["name"] == context), None) if context else active
        if context and chosen is None:
            raise PluginError(
                f"context {context!r} is not in your kubeconfig; it has: "
                + ", ".join(c["name"] for c in contexts)
            )
        api_client = config.new_client_from_config(
            config_file=kubeconfig, context=context, persist_config=False
        )
    except ConfigException as exc:
        raise PluginError(
            f"no usable kubeconfig ({exc}); set KUBECONFIG or pass --kubeconfig"
        ) from exc
    api_client.configuration.retries = 0
    ns = namespace or (chosen or {}).get("context", {}).get("namespace") or "default"
    return Cluster(
        custom=client.CustomObjectsApi(api_client),
        core=client.CoreV1Api(api_client),
        host=api_client.configuration.host,
        namespace=ns,
        context=(chosen or {}).get("name", ""),
    )


def explain(exc: Exception, cluster: Cluster, name: str) -> PluginError:
    """Turn a client failure into what happened and what to do."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, PluginError):
        return exc
    if isinstance(exc, ApiException):
        detail = _api_message(exc)
        if exc.status == 404:
            return _not_found(cluster, name)
        if exc.status == 401:
            return PluginError(
                f"the API server at {cluster.host} refused your credentials "
                f"(401 Unauthorized): renew them in your kubeconfig"
            )
        if exc.status == 403:
            return PluginError(
                f"forbidden: {detail or exc.reason}; ask for RBAC access to "
                f"{d.PLURAL}.{d.GROUP} in namespace {cluster.namespace}"
            )
        return PluginError(f"the API server answered {exc.status} {exc.reason}: {detail}")
    if isinstance(exc, (HTTPError, OSError)):
        reason = getattr(exc, "reason", None) or exc
        return PluginError(
            f"cannot reach the Kubernetes API server at {cluster.host} "
            f"({_short(reason)}); is the cluster up, and is the kubeconfig "
            f"context ({cluster.context or 'current'}) the right one?"
        )
    return PluginError(f"{type(exc).__name__}: {exc}")


def _short(reason: object) -> str:
    text = str(reason)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.split(": ", 1)[-1][:200]


def _api_message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message", ""))
    except (TypeError, ValueError, AttributeError):
        return ""


def api_installed(cluster: Cluster, version: str = d.VERSION) -> bool:
    """Whether the apiserver serves the ModelDeployment API (its CRD is installed)."""
    from kubernetes.client.exceptions import ApiException

    try:
        cluster.custom.get_api_resources(d.GROUP, version, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _not_found(cluster: Cluster, name: str) -> PluginError:
    """Tell a missing CRD from a missing object, and list what does exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        installed = api_installed(cluster)
    except ApiException:
        installed = True  # cannot tell (e.g. discovery forbidden): assume it is
    if not installed:
        return missing_api(cluster)
    try:
        items = cluster.custom.list_namespaced_custom_object(
            d.GROUP, d.VERSION, cluster.namespace, d.PLURAL, _request_timeout=REQUEST_TIMEOUT
        ).get("items", [])
        names = sorted(i["metadata"]["name"] for i in items)
    except ApiException:
        names = []
    hint = (
        f"; it has: {', '.join(names)}"
        if names
        else "; it has none (use -n NAMESPACE for another one)"
    )
    return PluginError(
        f'modeldeployment "{name}" not found in namespace "{cluster.namespace}"{hint}'
    )


def missing_api(cluster: Cluster) -> PluginError:
    """The error for a cluster without the CRD: say how to install it."""
    return PluginError(
        f"the ModelDeployment API ({d.API_VERSION}) is not installed in the cluster at "
        f"{cluster.host}: install it with `helm install modeldeploy charts/modeldeploy` "
        f"(or `kubectl apply -f crds/`)"
    )


def fetch(cluster: Cluster, name: str) -> Json:
    return cluster.custom.get_namespaced_custom_object(
        d.GROUP, d.VERSION, cluster.namespace, d.PLURAL, name, _request_timeout=REQUEST_TIMEOUT
    )


def fetch_events(cluster: Cluster, name: str) -> list[Json]:
    """Events about the ModelDeployment (the operator's transitions and reasons)."""
    resp = cluster.core.list_namespaced_event(
        cluster.namespace,
        field_selector=f"involvedObject.kind={d.KIND},involvedObject.name={name}",
        _preload_content=False,
        _request_timeout=REQUEST_TIMEOUT,
    )
    return list(json.loads(resp.data).get("items", []))


def request_control(cluster: Cluster, name: str, verb: str) -> str:
    obj = fetch(cluster, name)
    check_control(verb, obj)
    value = control_value(verb, datetime.now(UTC), secrets.token_hex(2))
    cluster.custom.patch_namespaced_custom_object(
        d.GROUP,
        d.VERSION,
        cluster.namespace,
        d.PLURAL,
        name,
        {"metadata": {"annotations": {d.ANNOTATION_CONTROL: value}}},
        _request_timeout=REQUEST_TIMEOUT,
    )
    return value


# --- commands -----------------------------------------------------------------------------


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


if __name__ == "__main__":
    sys.exit(main())

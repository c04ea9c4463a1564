"""The plugin's Kubernetes side: clients from the kubeconfig, the reads and the control
patch, and client failures turned into messages saying what to do."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator.plugin.views import Json, PluginError, check_control, control_value

REQUEST_TIMEOUT = (5, 30)  # seconds: connect, read


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
    """The ModelDeployment ``name`` as the apiserver returns it."""
    obj: Json = cluster.custom.get_namespaced_custom_object(
        d.GROUP, d.VERSION, cluster.namespace, d.PLURAL, name, _request_timeout=REQUEST_TIMEOUT
    )
    return obj


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

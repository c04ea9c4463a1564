"""Pure builders of the objects a ModelDeployment owns (the traffic routers render the rest).

Each function takes the parsed spec and the engine's ``Actions`` and returns a plain dict,
ready for server-side apply. Nothing here reads the cluster, so every object can be checked
in a unit test.

Roles and restarts: a slot's pod *template* never carries the role (stable/candidate),
because changing a template restarts pods. The role lives in the pod label
``modeldeploy.io/role``, which the operator patches on the running pods directly (see
``pod_role_patch``); Prometheus relabels that pod label to ``role``, so a promotion switches
the role of every series at once without a restart. The server's ``--role`` flag is only the
role a pod starts with (fixed for the slot's lifetime) and is overridden by the target label.
"""

from __future__ import annotations

from modeldeploy.operator import defaults as d
from modeldeploy.operator.autoscaling import Autoscaling
from modeldeploy.operator.model import Actions, Json, ModelRef, SlotDeployment, Spec
from modeldeploy.operator.modelsource import MLflowSource, S3Source
from modeldeploy.operator.owned import Owner as Owner  # re-exported: callers import it here
from modeldeploy.operator.owned import common_labels, metadata, selector, slot_name
from modeldeploy.operator.routers import router_for
from modeldeploy.server import contract as c
from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.contract import sources as src

UID = 10001
BUNDLE_MOUNT = "/models"
BUNDLE_DIR = f"{BUNDLE_MOUNT}/bundle"
HTTP_PORT_NAME = "http"
# A pod that is scaled down or replaced keeps serving this long after its deletion starts,
# while the endpoints controller, kube-proxy and gateways stop sending it new connections;
# only then does SIGTERM start the server's graceful shutdown (in-flight requests finish).
PRE_STOP_SECONDS = 5
TERMINATION_GRACE_SECONDS = 30
HPA_API_VERSION = "autoscaling/v2"


def restricted_container_security() -> Json:
    """The restricted Pod Security Standard, container level."""
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security() -> Json:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def serve_args(dep: SlotDeployment) -> list[str]:
    """``modeldeploy serve BUNDLE --sha256 ... --role ...``, flags from the server contract."""
    return [
        *c.SERVE_COMMAND,
        BUNDLE_DIR,
        c.FLAG_SHA256,
        dep.template.model.sha256,
        c.FLAG_ROLE,
        dep.serve_role,
        c.FLAG_HOST,
        "0.0.0.0",
        c.FLAG_PORT,
        str(c.DEFAULT_PORT),
    ]


def s3_flags(s3: S3Source | None) -> list[str]:
    """The ``FLAG_S3_*`` flags of an ``s3`` block (no secrets: those go in the env)."""
    args: list[str] = []
    if s3 is not None:
        if s3.endpoint:
            args += [src.FLAG_S3_ENDPOINT, s3.endpoint]
        if s3.region:
            args += [src.FLAG_S3_REGION, s3.region]
        if s3.path_style is not None:
            args.append(src.FLAG_S3_PATH_STYLE if s3.path_style else src.FLAG_NO_S3_PATH_STYLE)
    return args


def fetch_command(model: ModelRef, dest: str) -> list[str]:
    """``modeldeploy fetch URI DEST --sha256 ...`` plus the s3 or mlflow block's settings."""
    args = [*src.FETCH_COMMAND, model.bundle_uri, dest, src.FLAG_FETCH_SHA256, model.sha256]
    args += s3_flags(model.s3)
    if model.mlflow is not None:
        args += [src.FLAG_MLFLOW_TRACKING_URI, model.mlflow.tracking_uri]
    return args


def fetch_args(dep: SlotDeployment) -> list[str]:
    """``modeldeploy fetch URI DIR --sha256 ...`` plus the s3 or mlflow block's settings (no
    secrets). A models:/ template is concrete here (``models:/NAME/V``, its pin): the
    reconcile resolved it before the engine ran (``resolution``)."""
    return fetch_command(dep.template.model, BUNDLE_DIR)


def _secret_env(env: str, secret: str, key: str, required: bool) -> Json:
    ref = {"name": secret, "key": key, **({} if required else {"optional": True})}
    return {"name": env, "valueFrom": {"secretKeyRef": ref}}


def s3_env(s3: S3Source | None) -> list[Json]:
    """S3 credentials as references to the user's Secret (never a literal)."""
    if s3 is None or not s3.credentials_secret:
        return []
    return [
        _secret_env(env, s3.credentials_secret, key, required)
        for env, key, required in src.S3_CREDENTIAL_ENV
    ]


def mlflow_env(mlflow: MLflowSource | None) -> list[Json]:
    """MLflow credentials as references to the user's Secret (never a literal)."""
    if mlflow is None or not mlflow.credentials_secret:
        return []
    return [
        _secret_env(env, mlflow.credentials_secret, env, False) for env in src.MLFLOW_CREDENTIAL_ENV
    ]


def source_env(model: ModelRef) -> list[Json]:
    """The credentials, as references to the user's Secret: the pod reads it, the operator
    never does (it has no RBAC for Secrets), and the pod spec holds no secret."""
    return s3_env(model.s3) + mlflow_env(model.mlflow)


def fetch_env(dep: SlotDeployment) -> list[Json]:
    return source_env(dep.template.model)


def deployment(owner: Owner, spec: Spec, dep: SlotDeployment) -> Json:
    """Deployment ``NAME-SLOT`` running the slot's model (init container fetches it)."""
    tmpl = dep.template
    slot_labels = {
        d.LABEL_SLOT: dep.slot,
        d.LABEL_SCRAPE: "true",
        "app.kubernetes.io/instance": slot_name(owner.name, dep.slot),
        "app.kubernetes.io/version": tmpl.model.version[:63],
    }
    probe = {
        "httpGet": {"path": c.READY_PATH, "port": HTTP_PORT_NAME},
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }
    volume_mounts = [
        {"name": "bundle", "mountPath": BUNDLE_MOUNT},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    server: Json = {
        "name": "server",
        "image": tmpl.image,
        "imagePullPolicy": tmpl.image_pull_policy,
        "command": serve_args(dep),
        "ports": [{"name": HTTP_PORT_NAME, "containerPort": c.DEFAULT_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "livenessProbe": {
            "httpGet": {"path": c.LIVE_PATH, "port": HTTP_PORT_NAME},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "startupProbe": {
            "httpGet": {"path": c.LIVE_PATH, "port": HTTP_PORT_NAME},
            "periodSeconds": 2,
            "failureThreshold": 90,
        },
        "securityContext": restricted_container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{**m, "readOnly": m["name"] == "bundle"} for m in volume_mounts],
    }
    if tmpl.resources:
        server["resources"] = tmpl.resources
    if spec.pod.env:
        server["env"] = [dict(e) for e in spec.pod.env]
    # A label reaches any pod (a Service spreads requests): the servers forward one they did
    # not predict to the others, found through the headless Service over all of them.
    server["command"] += [c.FLAG_FEEDBACK_PEERS, f"{peers_service_name(owner)}:{c.DEFAULT_PORT}"]
    pod_ip = {"fieldRef": {"fieldPath": "status.podIP"}}
    server["env"] = [*server.get("env", []), {"name": c.ENV_POD_IP, "valueFrom": pod_ip}]
    if spec.retrain is not None:  # the servers write what /feedback labels to the store
        data = spec.retrain.labelled_data
        server["command"] += [rc.FLAG_LABELLED_DATA, data.uri, *s3_flags(data.s3)]
        pod_name = {"fieldRef": {"fieldPath": "metadata.name"}}
        server["env"] = [
            *server.get("env", []),
            {"name": rc.ENV_POD_NAME, "valueFrom": pod_name},
            *s3_env(data.s3),
        ]
    fetch: Json = {
        "name": "fetch-bundle",
        "image": tmpl.image,
        "imagePullPolicy": tmpl.image_pull_policy,
        "command": fetch_args(dep),
        **({"env": env} if (env := fetch_env(dep)) else {}),
        "securityContext": restricted_container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": volume_mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **metadata(
                owner, slot_name(owner.name, dep.slot), "model-server", **{d.LABEL_SLOT: dep.slot}
            ),
            "annotations": {d.ANNOTATION_REVISION: dep.revision},
        },
        "spec": {
            "replicas": dep.replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector(owner, dep.slot)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": {**common_labels(owner, "model-server"), **slot_labels},
                    "annotations": {
                        d.ANNOTATION_REVISION: dep.revision,
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(c.DEFAULT_PORT),
                        "prometheus.io/path": c.METRICS_PATH,
                    },
                },
                "spec": {
                    **spec.pod.pod_spec(selector(owner, dep.slot)),
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(),
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "initContainers": [fetch],
                    "containers": [server],
                    "volumes": [
                        {"name": "bundle", "emptyDir": {"sizeLimit": "2Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    }


def disruption_budget(owner: Owner, spec: Spec, slot: str) -> Json | None:
    """PodDisruptionBudget ``NAME-SLOT`` over the slot's pods, when the spec asks for one."""
    budget = spec.pod.disruption_budget
    if budget is None:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(
            owner, slot_name(owner.name, slot), "model-server", **{d.LABEL_SLOT: slot}
        ),
        "spec": {**budget, "selector": {"matchLabels": selector(owner, slot)}},
    }


def horizontal_pod_autoscaler(owner: Owner, scaling: Autoscaling | None) -> Json | None:
    """HorizontalPodAutoscaler ``NAME`` on the ModelDeployment (its scale subresource), when
    the spec asks for one: why not on a slot's Deployment is ``autoscaling``'s docstring."""
    if scaling is None:
        return None
    return {
        "apiVersion": HPA_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(owner, owner.name, "autoscaler"),
        "spec": {
            "scaleTargetRef": {"apiVersion": d.API_VERSION, "kind": d.KIND, "name": owner.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu,
                        },
                    },
                }
            ],
        },
    }


def service(owner: Owner, name: str, sel: dict[str, str], role: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, name, "model-service", **{f"{d.GROUP}/service": role}),
        "spec": {
            "type": "ClusterIP",
            "selector": sel,
            "ports": [
                {
                    "name": HTTP_PORT_NAME,
                    "port": c.DEFAULT_PORT,
                    "targetPort": HTTP_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def peers_service_name(owner: Owner) -> str:
    return f"{owner.name}-peers"


def peers_service(owner: Owner) -> Json:
    """Headless: its name resolves to every Ready pod of both slots, which is what a server
    forwarding a label needs (a ClusterIP would pick one pod at random)."""
    svc = service(owner, peers_service_name(owner), selector(owner), "peers")
    svc["spec"] = {"clusterIP": "None", **{k: v for k, v in svc["spec"].items() if k != "type"}}
    return svc


def candidate_service_name(spec: Spec, owner: Owner) -> str:
    suffix = "preview" if spec.strategy == "blueGreen" else "canary"
    return f"{owner.name}-{suffix}"


def _preview_slot(spec: Spec, actions: Actions, stable: str) -> str:
    """A blue/green's preview moves to the candidate once it has a Ready pod (before, its
    only endpoints would be the last version's pods on their way out); the canary Service
    follows the candidate at once."""
    candidate = actions.candidate_slot
    if candidate is None or (spec.strategy == "blueGreen" and not actions.candidate_ready):
        return stable
    return candidate


def services(owner: Owner, spec: Spec, actions: Actions) -> list[Json]:
    """The Services: ``NAME`` (what clients call), ``NAME-canary``/``NAME-preview`` (the
    candidate only), one per slot (the routed providers' backends) and ``NAME-peers``
    (headless, every pod: where the servers forward labels).

    The router says what ``NAME`` selects: with ``replicas`` a canary's selects both slots,
    so the weight is the share of ready pods; otherwise the stable slot, and a route splits.
    """
    stable = actions.stable_slot or "blue"
    main = router_for(spec).main_service_selector(owner, spec.strategy, stable)
    out = [
        service(owner, owner.name, main, "stable"),
        service(
            owner,
            candidate_service_name(spec, owner),
            selector(owner, _preview_slot(spec, actions, stable)),
            "candidate",
        ),
    ]
    out += [service(owner, slot_name(owner.name, s), selector(owner, s), s) for s in d.SLOTS]
    out.append(peers_service(owner))
    return out


def pod_role_patch(role: str) -> Json:
    """Merge patch for a running pod's role label (no restart: templates never change)."""
    return {"metadata": {"labels": {d.LABEL_ROLE: role}}}

"""The ModelDeployment's spec: defaults the apiserver fills in, CEL rules for what a schema
cannot say (exactly one strategy, weights that never decrease...)."""

from __future__ import annotations

from modeldeploy.operator import defaults as d
from modeldeploy.operator.schema.openapi import (
    CONDITION_PATTERN,
    DNS_LABEL_PATTERN,
    Schema,
    _bool,
    _duration,
    _exactly_one,
    _int,
    _list,
    _num,
    _obj,
    _quantity_map,
    _str,
)
from modeldeploy.operator.schema.podspec import POD_CHANGES, POD_RULES, pod_properties
from modeldeploy.operator.schema.retrain import RETRAIN_RULES, retrain_schema
from modeldeploy.operator.schema.scaling import AUTOSCALING_RULES, autoscaling_schema
from modeldeploy.operator.schema.sources import SOURCE_RULES, mlflow_schema, s3_schema
from modeldeploy.server.contract import sources


def model_schema() -> Schema:
    return _obj(
        {
            "name": _str(
                "The model's name (as in its model card).", pattern=DNS_LABEL_PATTERN, maxLength=63
            ),
            "version": _str(
                "The model version to run; changing it starts a rollout.", minLength=1, maxLength=63
            ),
            "bundleURI": _str(
                "Where the init container fetches the bundle from: http(s)://, "
                "s3://BUCKET/KEY.tar.gz, s3://BUCKET/PREFIX/ (a folder bundle), file://, an "
                "absolute path (a .tar.gz is unpacked), or an MLflow registry version "
                "models:/NAME/VERSION or alias models:/NAME@ALIAS (resolved by the operator to "
                "a version, recorded in status.resolvedModel; a new version is a rollout).",
                pattern=r"^(https?://|s3://|file://|/|models:/).+",
                maxLength=2048,
            ),
            "sha256": _str(
                "The bundle digest (`modeldeploy digest BUNDLE`: model and card); the init "
                "container keeps and the server loads nothing else. Required, except with a "
                "models:/ URI: then the version's modeldeploy.sha256 tag (written by "
                "`modeldeploy register`) is the pin, and a given sha256 must agree with it.",
                pattern=r"^[a-f0-9]{64}$",
            ),
            "s3": s3_schema(),
            "mlflow": mlflow_schema(),
        },
        required=["name", "version", "bundleURI"],
        description="The model to serve.",
        rules=[
            *SOURCE_RULES,
            (
                "!has(self.s3) || self.bundleURI.startsWith('s3://')",
                "s3 applies only to an s3:// bundleURI",
            ),
            (
                "!self.bundleURI.startsWith('s3://') || "
                f"(self.bundleURI.matches('{sources.S3_URI_PATTERN}') && "
                "!self.bundleURI.matches('^s3://[^/]*[.][.]'))",
                "an s3:// bundleURI is s3://BUCKET/KEY: a bucket name of 3 to 63 lowercase "
                "letters, digits, dots and hyphens (beginning and ending with a letter or "
                "digit, no '..'), then a key",
            ),
        ],
    )


def server_schema() -> Schema:
    return _obj(
        {
            "image": _str(
                "The model server image; defaults to the operator's --server-image.", maxLength=512
            ),
            "imagePullPolicy": _str(
                "", enum=["Always", "IfNotPresent", "Never"], default=d.IMAGE_PULL_POLICY
            ),
            "resources": _obj(
                {"requests": _quantity_map(), "limits": _quantity_map()},
                description="Container resources of the model server.",
            ),
            **pod_properties(),
        },
        default={},
        description="How the model server runs; image and resources are part of the "
        "model's revision (a change rolls out like a new version)." + POD_CHANGES,
        rules=POD_RULES,
    )


def analysis_ref_schema(description: str) -> Schema:
    return _obj(
        {
            "duration": _duration(
                "How long the analysis watches before it passes.", d.STEP_ANALYSIS_DURATION
            ),
        },
        description=description,
    )


def canary_schema() -> Schema:
    step = _obj(
        {
            "setWeight": _int("Percent of traffic to the candidate.", minimum=0, maximum=100),
            "pause": _obj(
                {
                    "duration": _duration(
                        "Pause this long; without it, pause until promoted (or resumed)."
                    )
                },
                description="Hold the current weight.",
            ),
            "analysis": analysis_ref_schema(
                "Hold the weight and analyse for a duration; a "
                "firing alert or failed check rolls back."
            ),
        },
        rules=[
            (
                _exactly_one("setWeight", "pause", "analysis"),
                "each step has exactly one of setWeight, pause, analysis",
            )
        ],
    )
    return _obj(
        {
            "steps": _list(
                step,
                "The steps, in order; after the last the candidate is promoted.",
                max_items=d.MAX_STEPS,
                minItems=1,
                **{
                    "x-kubernetes-validations": [
                        {
                            "rule": "self.map(s, has(s.setWeight), s.setWeight).isSorted()",
                            "message": "setWeight must not decrease from one step to the next",
                        }
                    ]
                },
            ),
        },
        required=["steps"],
        description="Shift traffic step by step.",
    )


def blue_green_schema() -> Schema:
    return _obj(
        {
            "autoPromotionEnabled": _bool(
                "Promote without a manual promote.", default=d.AUTO_PROMOTION_ENABLED
            ),
            "autoPromotionSeconds": _int(
                "Wait this long with the preview ready before promoting.",
                minimum=0,
                default=d.AUTO_PROMOTION_SECONDS,
            ),
            "scaleDownDelaySeconds": _int(
                "Keep the previous slot up this long after promotion.",
                minimum=0,
                default=d.SCALE_DOWN_DELAY_SECONDS,
            ),
            "prePromotionAnalysis": analysis_ref_schema("Analyse the preview before promotion."),
            "postPromotionAnalysis": analysis_ref_schema(
                "Analyse the new stable after promotion; failure switches back."
            ),
        },
        description="Run the candidate beside the stable behind a preview Service, then switch.",
    )


def shadow_schema() -> Schema:
    return _obj(
        {
            "duration": _duration(
                "How long the candidate receives mirrored traffic and is "
                "analysed before promotion.",
                d.SHADOW_DURATION,
            ),
            "autoPromote": _bool(
                "Promote once the analysis passed; otherwise wait for promote.",
                default=d.SHADOW_AUTO_PROMOTE,
            ),
        },
        description="The candidate receives a copy of the traffic; its answers are only compared.",
    )


def strategy_schema() -> Schema:
    return _obj(
        {
            "canary": canary_schema(),
            "blueGreen": blue_green_schema(),
            "shadow": shadow_schema(),
        },
        description="Exactly one of canary, blueGreen, shadow.",
        rules=[
            (
                _exactly_one("canary", "blueGreen", "shadow"),
                "exactly one of canary, blueGreen, shadow must be set",
            )
        ],
    )


def traffic_schema() -> Schema:
    parent_ref = _obj(
        {
            "name": _str(maxLength=253),
            "namespace": _str(maxLength=63),
            "sectionName": _str(maxLength=253),
        },
        required=["name"],
    )
    return _obj(
        {
            "replicas": _obj(
                {},
                description="Weight approximated by replica counts behind one "
                "Service (no dependencies; no mirroring).",
            ),
            "gatewayAPI": _obj(
                {
                    "httpRoute": _str("Name of the HTTPRoute the operator owns.", maxLength=253),
                    "parentRefs": _list(parent_ref, "Gateways the HTTPRoute attaches to.", 16),
                    "hostnames": _list(_str(maxLength=253), "", 16),
                },
                required=["httpRoute"],
                description="Gateway API HTTPRoute backend weights and request mirroring.",
            ),
            "istio": _obj(
                {
                    "virtualService": _str(
                        "Name of the VirtualService the operator owns.", maxLength=253
                    ),
                    "hosts": _list(_str(maxLength=253), "", 16),
                    "gateways": _list(_str(maxLength=253), "", 16),
                },
                required=["virtualService"],
                description="Istio VirtualService weights and mirror.",
            ),
            "traefik": _obj(
                {
                    "traefikService": _str(
                        "Name of the TraefikService (traefik.io/v1alpha1) the operator owns; "
                        "the user's IngressRoute or HTTPRoute names it.",
                        maxLength=253,
                    ),
                },
                required=["traefikService"],
                description="Traefik: a weighted TraefikService for canary and blue/green, a "
                "mirroring one for shadow.",
            ),
        },
        default={"replicas": {}},
        description="How traffic is split; exactly one provider.",
        rules=[
            (
                _exactly_one("replicas", "gatewayAPI", "istio", "traefik"),
                "exactly one of replicas, gatewayAPI, istio, traefik must be set",
            )
        ],
    )


def analysis_schema() -> Schema:
    check = _obj(
        {
            "name": _str(maxLength=63, pattern=DNS_LABEL_PATTERN),
            "query": _str("A PromQL query returning one value.", minLength=1, maxLength=4096),
            "successCondition": _str("e.g. 'result < 0.05'", pattern=CONDITION_PATTERN),
            "failureCondition": _str("e.g. 'result > 0.1'", pattern=CONDITION_PATTERN),
        },
        required=["name", "query"],
        rules=[
            (
                "has(self.successCondition) || has(self.failureCondition)",
                "a check needs a successCondition or a failureCondition",
            )
        ],
    )
    thresholds = _obj(
        {
            "driftPSI": _num(
                "Input drift alert: population stability index above this.",
                minimum=0,
                default=d.THRESHOLD_DRIFT_PSI,
            ),
            "divergenceStdErrors": _num(
                "Prediction divergence alert: candidate mean this many "
                "standard errors from stable, or (multiclass) its predicted-class "
                "counts' chi-square above this as a normal quantile (Wilson-Hilferty z).",
                minimum=0,
                default=d.THRESHOLD_DIVERGENCE_STD_ERRORS,
            ),
            "errorRate": _num(
                "Error rate alert: share of server errors above this.",
                minimum=0,
                maximum=1,
                default=d.THRESHOLD_ERROR_RATE,
            ),
            "latencyP99Seconds": _num(
                "Latency alert: p99 above this.", minimum=0, default=d.THRESHOLD_LATENCY_P99_SECONDS
            ),
            "liveAccuracyDrop": _num(
                "Live performance alert (opt-in): the candidate's accuracy on the "
                "/feedback labels of the window this much below the stable's (a share; "
                f"the gap must also be {d.LIVE_STD_ERRORS:g} standard errors).",
                minimum=0,
                maximum=1,
                default=d.THRESHOLD_LIVE_ACCURACY_DROP,
            ),
            "liveErrorRise": _num(
                "Live performance alert (opt-in), regressors: the candidate's MAE on "
                "the /feedback labels of the window this share above the stable's "
                f"(0.1: 10% higher; the gap must also be {d.LIVE_STD_ERRORS:g} standard errors).",
                minimum=0,
                default=d.THRESHOLD_LIVE_ERROR_RISE,
            ),
            "for": _duration("How long a condition holds before the alert fires.", d.THRESHOLD_FOR),
        },
        default={},
        description="Thresholds of the PrometheusRule the operator generates "
        "(when the Prometheus Operator's CRDs exist); they act beside "
        "the chart's rules, so they can only tighten them.",
    )
    return _obj(
        {
            "interval": _duration("How often the analysis runs.", d.ANALYSIS_INTERVAL),
            "prometheusURL": _str(
                "Prometheus to ask; defaults to the operator's --prometheus-url.",
                pattern=r"^https?://.+",
                maxLength=2048,
            ),
            "alerts": _list(
                _str(maxLength=253),
                "Alert names that roll back when firing for the candidate's version "
                "(labels namespace, modeldeployment, role, version); each must be a "
                "loaded, healthy alerting rule in that Prometheus, else the analysis "
                "is inconclusive. The chart also loads the opt-in ModelLivePerformanceDrop "
                "and ModelConceptDrift (on /feedback labels).",
                32,
                default=list(d.DEFAULT_ALERTS),
            ),
            "checks": _list(
                check,
                "PromQL checks with success and failure conditions.",
                16,
                default=[],
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
            ),
            "consecutiveErrorLimit": _int(
                "Inconclusive analyses in a row before onErrorLimit.",
                minimum=1,
                default=d.CONSECUTIVE_ERROR_LIMIT,
            ),
            "onErrorLimit": _str("", enum=list(d.ON_ERROR_LIMIT_CHOICES), default=d.ON_ERROR_LIMIT),
            "minSamples": _int(
                "Predictions the candidate must serve within an analysis step (or "
                "pre-promotion analysis) before it can pass, counted from the server's own "
                "counters; too few is never a pass.",
                minimum=0,
                default=d.MIN_SAMPLES,
            ),
            "onInsufficientEvidence": _str(
                "What an analysis step with too few predictions does once its duration is "
                "over: pause (resume or promote to go on) or rollback.",
                enum=list(d.ON_INSUFFICIENT_EVIDENCE_CHOICES),
                default=d.ON_INSUFFICIENT_EVIDENCE,
            ),
            "thresholds": thresholds,
        },
        default={},
        description="What gates a rollout.",
    )


def spec_schema() -> Schema:
    return _obj(
        {
            "model": model_schema(),
            "replicas": _int(
                "Replicas of the stable model (with autoscaling, the autoscaler sets it).",
                minimum=1,
                maximum=1000,
                default=d.REPLICAS,
            ),
            "autoscaling": autoscaling_schema(),
            "server": server_schema(),
            "strategy": strategy_schema(),
            "trafficProvider": traffic_schema(),
            "analysis": analysis_schema(),
            "progressDeadlineSeconds": _int(
                "A candidate not ready after this long is rolled back.",
                minimum=1,
                default=d.PROGRESS_DEADLINE_SECONDS,
            ),
            "retrain": retrain_schema(),
        },
        required=["model", "strategy"],
        rules=[
            (
                "!has(self.strategy.shadow) || !has(self.trafficProvider.replicas)",
                "strategy shadow needs trafficProvider gatewayAPI, istio or traefik (replicas "
                "cannot mirror)",
            ),
            *AUTOSCALING_RULES,
            *RETRAIN_RULES,
        ],
    )

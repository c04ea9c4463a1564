"""Model types of the rollout engine: the parsed spec, observations and actions.

Plain frozen dataclasses, no I/O: the handlers turn Kubernetes objects into these, the engine
turns them into a new status and ``Actions``, the builders turn actions into objects. The spec
parser falls back on ``defaults`` so a spec the apiserver did not default behaves the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from modeldeploy.operator import defaults as d
from modeldeploy.operator.autoscaling import Autoscaling
from modeldeploy.operator.evidence import AnalysisSample
from modeldeploy.operator.modelsource import (
    MLflowSource,
    S3Source,
    check_bundle_uri,
    sources_from_json,
)
from modeldeploy.operator.podoptions import PodOptions
from modeldeploy.operator.retrainspec import RetrainSpec
from modeldeploy.operator.retrainspec import parse as parse_retrain

Json = dict[str, Any]
Slot = Literal["blue", "green"]
StrategyName = Literal["canary", "blueGreen", "shadow"]
ProviderName = Literal["replicas", "gatewayAPI", "istio", "traefik"]
STRATEGY_NAMES: tuple[StrategyName, ...] = ("canary", "blueGreen", "shadow")
PROVIDER_NAMES: tuple[ProviderName, ...] = ("replicas", "gatewayAPI", "istio", "traefik")

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class SpecError(ValueError):
    """A spec the engine cannot act on (the CRD's validation should have refused it)."""


def parse_duration(text: str | int | float) -> float:
    """Seconds in a Go-style duration ("90s", "1m30s"); numbers are seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise SpecError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h30m)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def format_time(at: datetime) -> str:
    """RFC 3339 in UTC, seconds precision: what Kubernetes writes."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """What ``format_time`` writes, and nothing else (ValueError). ``strptime`` took a
    fiftieth of the event loop at 500 ModelDeployments; ``fromisoformat`` is C."""
    if not text:
        return None
    if len(text) != 20 or text[10] != "T" or text[-1] != "Z":
        raise ValueError(f"not a Kubernetes time (YYYY-MM-DDTHH:MM:SSZ): {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def other_slot(slot: str) -> Slot:
    return "green" if slot == "blue" else "blue"


# --- the spec ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    bundle_uri: str
    sha256: str  # "" only for a models:/ URI (then the version's digest tag pins it)
    s3: S3Source | None = None  # only with an s3:// bundle_uri
    mlflow: MLflowSource | None = None  # only (and always) with a models:/ bundle_uri

    def to_json(self) -> Json:
        out: Json = {
            "name": self.name,
            "version": self.version,
            "bundleURI": self.bundle_uri,
            "sha256": self.sha256,
        }
        if self.s3 is not None:
            out["s3"] = self.s3.to_json()
        if self.mlflow is not None:
            out["mlflow"] = self.mlflow.to_json()
        return out

    @classmethod
    def from_json(cls, raw: Json) -> ModelRef:
        try:
            uri = raw["bundleURI"]
            s3, mlflow = sources_from_json(raw)
            sha = str(raw.get("sha256") or "")
            out = cls(raw["name"], str(raw["version"]), uri, sha, s3, mlflow)
            check_bundle_uri(uri, out.s3, out.mlflow, sha)
        except KeyError as exc:
            raise SpecError(f"spec.model.{exc.args[0]} is required") from None
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        return out


@dataclass(frozen=True)
class Template:
    """What a slot's pods run: changing any of it is a new revision (a rollout)."""

    model: ModelRef
    image: str
    image_pull_policy: str = d.IMAGE_PULL_POLICY
    resources: Json = field(default_factory=dict)

    def to_json(self) -> Json:
        server: Json = {"image": self.image, "imagePullPolicy": self.image_pull_policy}
        if self.resources:
            server["resources"] = self.resources
        return {"model": self.model.to_json(), "server": server}

    @classmethod
    def from_json(cls, raw: Json) -> Template:
        server = raw.get("server") or {}
        return cls(
            model=ModelRef.from_json(raw.get("model") or {}),
            image=server.get("image", ""),
            image_pull_policy=server.get("imagePullPolicy", d.IMAGE_PULL_POLICY),
            resources=dict(server.get("resources") or {}),
        )

    @property
    def revision(self) -> str:
        """A short digest of everything that needs new pods."""
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SetWeight:
    weight: int


@dataclass(frozen=True)
class Pause:
    seconds: float | None  # None: until promoted or resumed


@dataclass(frozen=True)
class Analysis:
    seconds: float
    role: str = d.ROLE_CANDIDATE  # whose alerts gate it: the candidate, or the new stable


@dataclass(frozen=True)
class WaitReady:
    """The candidate slot serves at its desired replicas."""


@dataclass(frozen=True)
class Promote:
    """Flip the stable pointer to the candidate slot (no pod restarts)."""


@dataclass(frozen=True)
class ScaleDownPrevious:
    delay: float


Step = SetWeight | Pause | Analysis | WaitReady | Promote | ScaleDownPrevious


@dataclass(frozen=True)
class Check:
    name: str
    query: str
    success: str | None
    failure: str | None


@dataclass(frozen=True)
class AnalysisSpec:
    interval: float = parse_duration(d.ANALYSIS_INTERVAL)
    prometheus_url: str | None = None
    alerts: tuple[str, ...] = d.DEFAULT_ALERTS
    checks: tuple[Check, ...] = ()
    consecutive_error_limit: int = d.CONSECUTIVE_ERROR_LIMIT
    on_error_limit: str = d.ON_ERROR_LIMIT
    thresholds: Json = field(default_factory=dict)
    min_samples: int = d.MIN_SAMPLES
    on_insufficient_evidence: str = d.ON_INSUFFICIENT_EVIDENCE

    @classmethod
    def from_json(cls, raw: Json) -> AnalysisSpec:
        checks = tuple(
            Check(
                name=c["name"],
                query=c["query"],
                success=c.get("successCondition"),
                failure=c.get("failureCondition"),
            )
            for c in raw.get("checks") or []
        )
        return cls(
            interval=parse_duration(raw.get("interval", d.ANALYSIS_INTERVAL)),
            prometheus_url=raw.get("prometheusURL"),
            alerts=tuple(raw.get("alerts", d.DEFAULT_ALERTS)),
            checks=checks,
            consecutive_error_limit=int(
                raw.get("consecutiveErrorLimit", d.CONSECUTIVE_ERROR_LIMIT)
            ),
            on_error_limit=raw.get("onErrorLimit", d.ON_ERROR_LIMIT),
            thresholds=dict(raw.get("thresholds") or {}),
            min_samples=int(raw.get("minSamples", d.MIN_SAMPLES)),
            on_insufficient_evidence=raw.get("onInsufficientEvidence", d.ON_INSUFFICIENT_EVIDENCE),
        )


@dataclass(frozen=True)
class Spec:
    """A parsed ModelDeployment spec."""

    name: str
    namespace: str
    template: Template
    replicas: int
    strategy: StrategyName
    strategy_spec: Json
    provider: ProviderName
    provider_spec: Json
    analysis: AnalysisSpec
    progress_deadline: float
    generation: int = 0
    pod: PodOptions = field(default_factory=PodOptions)  # both slots' pods; not the revision
    autoscaling: Autoscaling | None = None  # sets ``replicas`` through the scale subresource
    retrain: RetrainSpec | None = None  # ``spec.retrain``: the retraining loop (``retraining``)

    @classmethod
    def from_body(cls, body: Json, default_image: str = "") -> Spec:
        """Parse a ModelDeployment object (as read from the apiserver)."""
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        server = dict(spec.get("server") or {})
        if not server.get("image"):
            if not default_image:
                raise SpecError(
                    "spec.server.image is empty and the operator has no --server-image default"
                )
            server["image"] = default_image
        strategies = [k for k in STRATEGY_NAMES if k in (spec.get("strategy") or {})]
        if len(strategies) != 1:
            raise SpecError("exactly one of canary, blueGreen, shadow must be set")
        traffic = spec.get("trafficProvider") or {"replicas": {}}
        providers = [k for k in PROVIDER_NAMES if k in traffic]
        if len(providers) != 1:
            raise SpecError("exactly one traffic provider must be set")
        strategy = strategies[0]
        try:
            pod = PodOptions.from_json(server)
            autoscaling = Autoscaling.from_spec({**spec, "server": server})
            retrain = parse_retrain(spec)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        return cls(
            name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            template=Template.from_json({"model": spec.get("model") or {}, "server": server}),
            replicas=int(spec.get("replicas", d.REPLICAS)),
            strategy=strategy,
            strategy_spec=dict(spec["strategy"][strategy] or {}),
            provider=providers[0],
            provider_spec=dict(traffic[providers[0]] or {}),
            analysis=AnalysisSpec.from_json(spec.get("analysis") or {}),
            progress_deadline=float(
                spec.get("progressDeadlineSeconds", d.PROGRESS_DEADLINE_SECONDS)
            ),
            generation=int(meta.get("generation") or 0),
            pod=pod,
            autoscaling=autoscaling,
            retrain=retrain,
        )


# --- observations -----------------------------------------------------------------------


@dataclass(frozen=True)
class SlotObservation:
    """What the apiserver says about one slot's Deployment and pods."""

    exists: bool = False
    revision: str = ""
    replicas: int = 0  # the Deployment's spec.replicas
    ready_replicas: int = 0
    updated_replicas: int = 0
    up_to_date: bool = False  # observedGeneration caught up, no old ReplicaSet pods left
    reason: str = ""  # why pods are not ready, e.g. "readiness probe failed: sha256 mismatch"

    def serves(self, revision: str, replicas: int) -> bool:
        """True when this slot runs ``revision`` with at least ``replicas`` ready pods.

        "At least": after a restart that lost a status write the slot may already be
        scaled for a later step; that step is then reached again instead of undone.
        """
        return (
            self.exists
            and self.revision == revision
            and self.up_to_date
            and self.replicas >= replicas
            and self.ready_replicas >= replicas
            and self.updated_replicas >= replicas
        )


@dataclass(frozen=True)
class Observations:
    slots: dict[str, SlotObservation] = field(default_factory=dict)
    analysis: AnalysisSample | None = None
    control: str | None = None
    retrain_awaiting: bool = False  # a retrained version waits for the promote control

    def slot(self, slot: str) -> SlotObservation:
        return self.slots.get(slot) or SlotObservation()


# --- actions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotDeployment:
    slot: Slot
    template: Template
    serve_role: str  # the --role the pods are created with; fixed for the slot's lifetime
    replicas: int
    revision: str


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Actions:
    """Desired state: applying it twice is the same as once."""

    deployments: tuple[SlotDeployment, ...] = ()
    pod_roles: dict[str, str] = field(default_factory=dict)
    stable_slot: Slot | None = None
    candidate_slot: Slot | None = None
    weight: int = 0  # percent of traffic to the candidate slot
    candidate_ready: bool = False  # the candidate slot has a Ready pod of its revision
    mirror: bool = False  # mirror traffic to the candidate slot (shadow)
    events: tuple[Event, ...] = ()
    prometheus_rule: bool = True

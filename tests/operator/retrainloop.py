"""The retraining state machine driven tick by tick, as the unit tests of ``retraining`` and
``retrainoutput`` drive it: every state written goes through the apiserver's pruning with
the CRD's status schema, as in the reconcile, so a field the schema does not declare would
be lost here too."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from opworld import STATUS_SCHEMA, T0, pruned

from modeldeploy.operator import defaults as d
from modeldeploy.operator import retraining as r
from modeldeploy.operator.retrainspec import RetrainSpec, parse

SHA_NEW = "d" * 64
STABLE = r.Stable(uri="models:/churn/4", version="4", sha256="a" * 64)
DRIFT = ((d.ALERT_DRIFT + '{feature="plan"}', 0.31),)
RETRAIN_SCHEMA = STATUS_SCHEMA["properties"]["retrain"]


def rspec(model: dict[str, Any] | None = None, **over: Any) -> RetrainSpec:
    raw: dict[str, Any] = {
        "trainer": {"image": "trainer:1"},
        "labelledData": {"uri": "s3://labels/churn"},
        **over,
    }
    out = parse({"model": model or {"bundleURI": "models:/churn@production"}, "retrain": raw})
    assert out is not None
    return out


class Loop:
    """The state machine driven tick by tick, its state written as the apiserver keeps it;
    ``inputs`` go into every tick's ``Inputs`` (the stable, the output target)."""

    def __init__(self, spec: RetrainSpec | None = None, **inputs: Any) -> None:
        self.spec = spec or rspec()
        self.inputs: dict[str, Any] = {"stable": STABLE, **inputs}
        self.state: dict[str, Any] = {}
        self.now = T0
        self.events: list[tuple[str, str]] = []
        self.jobs: dict[str, r.JobState] = {}

    def tick(self, seconds: float = 10, **kw: Any) -> r.Decision:
        self.now += timedelta(seconds=seconds)
        inputs = r.Inputs(jobs=dict(self.jobs), **{**self.inputs, **kw})
        decision = r.step(self.spec, self.state, inputs, self.now, "churn")
        self.state = pruned(decision.state, RETRAIN_SCHEMA)
        assert self.state == decision.state, "status.retrain must survive pruning"
        self.events += [(e.reason, e.message) for e in decision.events]
        return decision

    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.events]

    def finish(self, name: str, state: str, message: Any = None, code: int = 0, **kw: Any) -> None:
        text = message if isinstance(message, str) or message is None else json.dumps(message)
        self.jobs[name] = r.JobState(name, state, message=text or "", exit_code=code, **kw)  # type: ignore[arg-type]

    def trained(self, **answer: str) -> None:
        run = self.state["current"]
        result = {"version": "5", "modelURI": "models:/churn/5", "sha256": SHA_NEW, **answer}
        self.finish(run["trainJob"], "succeeded", result)

    def gated(self, passed: bool = True, summary: str = "accuracy 0.91 vs 0.84") -> None:
        run = self.state["current"]
        answer = {"passed": passed, "summary": summary, "checks": []}
        self.finish(run["gateJob"], "succeeded" if passed else "failed", answer)

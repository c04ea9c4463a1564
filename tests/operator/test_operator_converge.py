"""Which children a resync re-applies: changed desired state, or a child deleted or edited
by someone else (markers from the kopf indexes); unchanged children cost no request."""

from __future__ import annotations

from modeldeploy.operator import converge
from modeldeploy.operator import defaults as d


def child(kind: str, name: str, **meta: object) -> dict[str, object]:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {d.LABEL_NAME: "iris"},
            **meta,
        },
    }


def test_markers_follow_the_spec_not_the_status() -> None:
    assert converge.marker({"generation": 3, "resourceVersion": "99"}) == "g3"
    assert converge.marker({"resourceVersion": "99"}) == "rv99"  # a Service: no generation
    entry = converge.index_entry("Service", child("Service", "iris", resourceVersion="7"))
    assert entry == {("ml", "iris"): {("Service", "iris"): "rv7"}}


def test_needs_apply() -> None:
    marks = {("Deployment", "iris-blue"): "g2", ("Service", "iris"): "rv7"}
    last = ("digest", marks)
    assert converge.needs_apply(None, "digest", dict(marks)), "never applied"
    assert converge.needs_apply(last, "other", dict(marks)), "desired state changed"
    assert converge.needs_apply(last, "digest", None), "nothing watched"
    assert not converge.needs_apply(last, "digest", dict(marks)), "unchanged: no request"
    deleted = {("Deployment", "iris-blue"): "g2"}
    assert converge.needs_apply(last, "digest", deleted)
    edited = {**marks, ("Deployment", "iris-blue"): "g3"}
    assert converge.needs_apply(last, "digest", edited)
    extra = {**marks, ("Service", "someone-elses"): "rv1"}
    assert not converge.needs_apply(last, "digest", extra)


def test_observed_merges_the_indexes_of_every_kind() -> None:
    deployments = {("ml", "iris"): [{("Deployment", "iris-blue"): "g2"}]}
    services = {("ml", "iris"): [{("Service", "iris"): "rv7"}, {("Service", "iris-blue"): "rv8"}]}
    got = converge.observed((deployments, services, None), ("ml", "iris"))
    assert got == {
        ("Deployment", "iris-blue"): "g2",
        ("Service", "iris"): "rv7",
        ("Service", "iris-blue"): "rv8",
    }
    assert converge.observed((deployments,), ("ml", "other")) == {}

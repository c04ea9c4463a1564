"""Which children a resync re-applies: changed desired state, or a child deleted or edited
by someone else (markers from the kopf indexes); unchanged children cost no request."""

from __future__ import annotations

import json

from opworld import body, healthy, passing, tick
from test_operator_builders import CASES, OWNER, rollout_actions

from modeldeploy.operator import converge
from modeldeploy.operator import defaults as d
from modeldeploy.operator.desired import children
from modeldeploy.operator.model import Spec


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


def obj(kind: str, name: str, replicas: int = 1) -> dict[str, object]:
    return {"kind": kind, "metadata": {"name": name}, "spec": {"replicas": replicas}}


def names(todo: list[tuple[dict[str, object], bytes]]) -> list[object]:
    return [o["metadata"]["name"] for o, _ in todo]  # type: ignore[index]


def test_to_apply_writes_only_what_changed_in_apply_order() -> None:
    dep, svc, route = obj("Deployment", "iris-blue"), obj("Service", "iris"), obj("X", "r")
    objs = [dep, svc, route]
    marks = {("Deployment", "iris-blue"): "g2", ("Service", "iris"): "rv7", ("X", "r"): "g1"}
    last = {converge.child_key(o): (converge.digest(o), marks[converge.child_key(o)]) for o in objs}
    assert names(converge.to_apply(objs, {}, dict(marks))) == ["iris-blue", "iris", "r"]
    assert names(converge.to_apply(objs, last, None)) == ["iris-blue", "iris", "r"], "unwatched"
    assert converge.to_apply(objs, last, dict(marks)) == [], "unchanged: no request"
    moved = [dep, svc, obj("X", "r", replicas=2)]  # a canary step: only the route changes
    todo = converge.to_apply(moved, last, dict(marks))
    assert names(todo) == ["r"] and todo[0][1] == converge.digest(moved[2])
    deleted = {("Deployment", "iris-blue"): "g2", ("X", "r"): "g1"}
    assert names(converge.to_apply(objs, last, deleted)) == ["iris"]
    edited = {**marks, ("Deployment", "iris-blue"): "g3"}
    assert names(converge.to_apply(objs, last, edited)) == ["iris-blue"]
    extra = {**marks, ("Service", "someone-elses"): "rv1"}
    assert converge.to_apply(objs, last, extra) == []
    both = [obj("Deployment", "iris-blue", 0), svc, obj("X", "r", 2)]
    assert names(converge.to_apply(both, last, dict(marks))) == ["iris-blue", "r"], "in order"


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


def test_the_same_desired_children_built_twice_digest_alike_and_a_change_shows() -> None:
    """Each reconcile parses its object afresh (from the watch's JSON) and builds every child
    again: unchanged, the digests must match, or every resync would re-apply everything."""
    for name, sp in CASES.items():  # every strategy and traffic provider
        actions = rollout_actions(sp)
        first = children(OWNER, sp, actions, with_rule=True, with_traffic=True)
        second = children(OWNER, sp, actions, with_rule=True, with_traffic=True)
        assert [converge.digest(o) for o in first] == [converge.digest(o) for o in second], name
    world, status = healthy(Spec.from_body(body()))
    v1 = Spec.from_body(json.loads(json.dumps(body())))
    _, a1 = tick(world, v1, status, sample=passing(world.now))
    v1_again = Spec.from_body(json.loads(json.dumps(body())))
    _, a2 = tick(world, v1_again, status, sample=passing(world.now))
    one = children(OWNER, v1, a1, with_rule=True, with_traffic=True)
    two = children(OWNER, v1_again, a2, with_rule=True, with_traffic=True)
    assert one and [converge.digest(o) for o in one] == [converge.digest(o) for o in two]
    bigger = json.loads(json.dumps(body()))
    bigger["spec"]["replicas"] = 3
    v1_bigger = Spec.from_body(bigger)
    _, a3 = tick(world, v1_bigger, status, sample=passing(world.now))
    three = children(OWNER, v1_bigger, a3, with_rule=True, with_traffic=True)
    changed = {converge.child_key(o) for o, d3 in zip(one, three, strict=True) if o != d3}
    assert changed, "more replicas changes a Deployment"
    for old, new in zip(one, three, strict=True):
        assert (converge.digest(old) == converge.digest(new)) == (old == new), old["kind"]

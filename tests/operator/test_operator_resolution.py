"""Resolving and pinning a models:/ spec before the engine runs (pure: the look-up is an async
callable here, the real registry client is tested against a real tracking server in
tests/server/test_source_mlflow_operator.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opworld import SHA_A, SHA_B, body

from modeldeploy.operator.model import Spec
from modeldeploy.operator.resolution import (
    CACHE_SECONDS,
    ResolutionCache,
    SourceError,
    decide,
    failure_message,
    settle,
)
from modeldeploy.server.contract.registry import Resolved

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TRACKING = "http://mlflow.ml.svc:5000"
SECRET = "s3cr3t-token-value"


def spec(uri: str = "models:/iris@champion", sha256: str = "") -> Spec:
    raw: dict[str, Any] = {"name": "iris", "version": "1", "bundleURI": uri}
    raw["mlflow"] = {"trackingURI": TRACKING, "credentialsSecret": "creds"}
    if sha256:
        raw["sha256"] = sha256
    return Spec.from_body({**body(), "spec": {**body()["spec"], "model": raw}})


def version(v: str, sha: str = SHA_A, alias: str = "champion") -> Resolved:
    return Resolved("iris", v, alias, f"mlflow-artifacts:/1/m-{v}/artifacts", sha)


class Registry:
    """A registry whose answers the test sets; counts the look-ups."""

    def __init__(self, answer: Resolved | str) -> None:
        self.answer, self.calls = answer, 0

    async def __call__(self, tracking_uri: str, uri: str) -> Resolved:
        assert tracking_uri == TRACKING
        self.calls += 1
        if isinstance(self.answer, str):
            raise SourceError(self.answer)
        return self.answer


def run(
    sp: Spec, status: dict[str, Any], cache: ResolutionCache, reg: Registry, at: datetime
) -> Any:
    return asyncio.run(settle(sp, status, cache, reg, at))


def test_an_alias_becomes_the_concrete_pinned_version_and_is_recorded() -> None:
    d = decide(spec(), None, version("3"), T0)
    assert d.spec is not None and not d.error
    model = d.spec.template.model
    assert (model.bundle_uri, model.sha256) == ("models:/iris/3", SHA_A)
    assert model.mlflow is not None and model.mlflow.tracking_uri == TRACKING
    assert d.record == {
        "requested": "models:/iris@champion",
        "trackingURI": TRACKING,
        "uri": "models:/iris/3",
        "version": "3",
        "alias": "champion",
        "sha256": SHA_A,
        "resolvedAt": "2026-12-01T12:00:00Z",
    }


def test_the_same_answer_keeps_its_time_and_revision_and_a_moved_alias_is_a_new_revision() -> None:
    first = decide(spec(), None, version("3"), T0)
    again = decide(spec(), first.record, version("3"), T0 + timedelta(minutes=5))
    assert again.record == first.record, "no status churn while nothing changed"
    assert first.spec is not None and again.spec is not None
    assert again.spec.template.revision == first.spec.template.revision
    moved = decide(spec(), first.record, version("4", SHA_B), T0 + timedelta(minutes=6))
    assert moved.spec is not None and moved.record is not None
    assert moved.spec.template.model.bundle_uri == "models:/iris/4"
    assert moved.spec.template.model.sha256 == SHA_B
    assert moved.spec.template.revision != first.spec.template.revision  # a new rollout
    assert moved.record["resolvedAt"] == "2026-12-01T12:06:00Z"


def test_the_cache_answers_for_its_ttl_then_the_registry_is_asked_again() -> None:
    cache, reg = ResolutionCache(), Registry(version("3"))
    for seconds in (0, 1, CACHE_SECONDS - 1):
        d = run(spec(), {}, cache, reg, T0 + timedelta(seconds=seconds))
        assert d.spec.template.model.bundle_uri == "models:/iris/3"
    assert reg.calls == 1
    reg.answer = version("4", SHA_B)
    d = run(spec(), {}, cache, reg, T0 + timedelta(seconds=CACHE_SECONDS))
    assert reg.calls == 2 and d.spec.template.model.bundle_uri == "models:/iris/4"
    other = run(spec("models:/iris/2"), {}, cache, reg, T0 + timedelta(seconds=CACHE_SECONDS))
    assert reg.calls == 3, "cached per (tracking URI, URI)"
    assert other.record["requested"] == "models:/iris/2"
    assert set(cache.entries) == {(TRACKING, "models:/iris@champion"), (TRACKING, "models:/iris/2")}


def test_a_failure_with_a_previous_resolution_of_the_same_uri_keeps_it_and_says_so() -> None:
    first = decide(spec(), None, version("3"), T0)
    error = f"the tracking server {TRACKING} could not be read: ClientConnectorError"
    d = decide(spec(), first.record, error, T0 + timedelta(minutes=1))
    assert d.spec is not None and d.error == error
    assert d.spec.template.model.bundle_uri == "models:/iris/3"
    assert first.spec is not None and d.spec.template.revision == first.spec.template.revision
    assert d.record is not None and d.record["uri"] == "models:/iris/3"
    assert (
        "could not be read" in d.record["message"]
        and "still running models:/iris/3" in (d.record["message"])
    )
    assert d.record["resolvedAt"] == first.record["resolvedAt"]


@pytest.mark.parametrize(
    ("requested", "given"),
    [("models:/iris@challenger", ""), ("models:/iris@champion", SHA_B)],
)
def test_a_previous_resolution_of_another_uri_or_pin_is_not_used(
    requested: str, given: str
) -> None:
    first = decide(spec(), None, version("3"), T0)
    d = decide(spec(requested, given), first.record, "unknown alias", T0)
    assert d.spec is None and d.error == "unknown alias"
    assert "nothing new applied" in failure_message(d)


def test_a_failure_without_a_previous_resolution_applies_nothing() -> None:
    cache = ResolutionCache()
    reg = Registry(f"models:/iris@champion: unknown model 'iris' on the tracking server {TRACKING}")
    d = run(spec(), {}, cache, reg, T0)
    assert d.spec is None and d.record is None
    assert failure_message(d).startswith("model source: models:/iris@champion: unknown model")
    run(spec(), {}, cache, reg, T0 + timedelta(seconds=1))
    assert reg.calls == 1, "failures are cached too: the registry is not hammered"


@pytest.mark.parametrize(
    ("tag", "given", "message"),
    [
        ("", "", "no modeldeploy.sha256 tag and no spec.model.sha256"),
        (SHA_A, SHA_B, "spec.model.sha256 .* disagrees with the version's tag"),
        ("not-a-digest", "", "is not a sha256"),
    ],
)
def test_an_unpinnable_version_is_a_failure(tag: str, given: str, message: str) -> None:
    d = decide(spec(sha256=given), None, version("3", tag), T0)
    assert d.spec is None
    assert re.search(message, d.error)


def test_a_given_sha256_that_agrees_is_the_pin() -> None:
    d = decide(spec(sha256=SHA_A), None, version("3", SHA_A), T0)
    assert d.spec is not None and d.spec.template.model.sha256 == SHA_A


def test_other_uris_are_untouched_and_no_record_is_kept() -> None:
    raw = {"name": "iris", "version": "1", "bundleURI": "https://x.test/b.tar.gz", "sha256": SHA_A}
    sp = Spec.from_body({**body(), "spec": {**body()["spec"], "model": raw}})
    reg = Registry("never asked")
    d = run(sp, {"resolvedModel": {"uri": "models:/iris/3"}}, ResolutionCache(), reg, T0)
    assert d.spec == sp and d.record is None and reg.calls == 0


def test_no_credential_reaches_a_record_or_a_message() -> None:
    """The operator's credentials live in its client; nothing decided here carries them."""
    first = decide(spec(), None, version("3"), T0)
    kept = decide(spec(), first.record, "HTTP 401 unauthorized", T0)
    blob = json.dumps([first.record, kept.record, kept.error, repr(kept.spec)])
    assert SECRET not in blob and "creds" not in json.dumps([first.record, kept.record])


def test_the_card_version_tag_is_the_version_the_slots_run_and_report() -> None:
    """After ``@champion`` moves from a v2 card to a v3 card, the spec's version string is
    the same, but the concrete specs are not: each carries its card's version, the one its
    server labels its metrics with (so the stable's alert is never the candidate's)."""
    tagged = dataclasses.replace(version("3"), card_version="v3")
    d = decide(spec(), None, tagged, T0)
    assert d.spec is not None and d.spec.template.model.version == "v3"
    assert d.record is not None and d.record["cardVersion"] == "v3"
    older = decide(spec(), None, dataclasses.replace(version("2"), card_version="v2"), T0)
    assert older.spec is not None and older.spec.template.model.version == "v2"
    assert older.spec.template.revision != d.spec.template.revision
    # the registry unreadable later: the kept answer keeps its card's version
    kept = decide(spec(), {**d.record}, "tracking server unreachable", T0)
    assert kept.spec is not None and kept.spec.template.model.version == "v3"
    # an untagged version keeps the spec's own version string
    plain = decide(spec(), None, version("4"), T0)
    assert plain.spec is not None and plain.spec.template.model.version == "1"

"""Retraining without a registry: where the trainer writes a new bundle, and how the
ModelDeployment comes to run it (``spec.retrain.output``). Pure: no I/O, no clock.

A ModelDeployment on ``models:/NAME@ALIAS`` is promoted by moving its alias (``retrainsync``).
One on an s3:// or http(s):// bundle has no alias to move, and its spec is its user's (often a
GitOps repository's): the operator never edits it. A version that passed the gate is instead
recorded in ``status.retrain.adopted``, with the spec's bundle it stands in for (``over``),
and the reconcile runs it in that bundle's place for as long as the spec still names that
bundle (``apply``). The change is a new revision, so it rolls out by the ModelDeployment's
own strategy and analysis, exactly like one a person started; a spec that names another
bundle wins at once (a person, or the repository, chose), and the adoption ends.

Each run writes one object, ``OUTPUT/NAMESPACE/NAME/VERSION.tar.gz`` (an S3 object, or an
http(s) PUT), where VERSION is the spec's model version and the run (``v1-r3``): unique per
ModelDeployment, as the rules key alerts by version, and found by a person who lists it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from modeldeploy.operator.model import Json, Spec
from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.contract import sources

KEY = "adopted"  # status.retrain.adopted


@dataclass(frozen=True)
class Target:
    """The spec's own bundle (what an adoption stands in for) and where new ones go."""

    bundle_uri: str
    sha256: str
    version: str
    location: str  # OUTPUT/NAMESPACE/NAME


def target(spec: Spec, namespace: str, name: str) -> Target | None:
    """The output of ``spec`` (a requested spec: resolved, nothing adopted), or None when its
    new versions go to a registry (or it does not retrain)."""
    rs = spec.retrain
    if rs is None or not rs.output_uri:
        return None
    model = spec.template.model
    location = f"{rs.output_uri}/{namespace}/{name}"
    return Target(model.bundle_uri, model.sha256, model.version, location)


def run_output(t: Target, run_id: str) -> tuple[str, str]:
    """(the object the run's trainer writes, the version its card carries)."""
    version = f"{t.version}-r{run_id}"
    return f"{t.location}/{version}.tar.gz", version


def record(t: Target, run: Json, at: str) -> Json:
    """``status.retrain.adopted`` for a run that passed the gate."""
    return {
        "uri": str(run.get("modelURI", "")),
        "sha256": str(run.get("sha256", "")),
        "version": str(run.get("version", "")),
        "run": str(run.get("id", "")),
        "adoptedAt": at,
        "over": {"bundleURI": t.bundle_uri, "sha256": t.sha256},
    }


def adopt(t: Target, run: Json, at: str) -> tuple[Json, str]:
    """The adoption of a run whose version passed the gate, and the status message."""
    message = (
        f"version {run.get('version')} ({run.get('modelURI')}) adopted over {t.bundle_uri} "
        f"(gate: {run.get('gateSummary', '')}); rolling out"
    )
    return record(t, run, at), message


def ended(t: Target | None, adopted: Any) -> str | None:
    """Why an adoption no longer stands (the spec names another bundle), or None."""
    if adopted is None or stands(t, adopted):
        return None
    now = t.bundle_uri if t is not None else "a registry model"
    version = adopted.get("version") if isinstance(adopted, dict) else "?"
    return f"the spec now names {now}: version {version} no longer runs in its place"


def bad_answer(job: str, run: Json, version: str, uri: str) -> str:
    """Why a trainer's answer is not the run's output ("" when it is)."""
    want = (run.get("outputURI"), run.get("outputVersion"))
    if (uri, version) == want:
        return ""
    return (
        f"Job {job} answered version {version} at {uri}, not the {rc.ENV_VERSION} {want[1]} "
        f"at the {rc.ENV_OUTPUT} {want[0]} it was given"
    )


def stands(t: Target | None, adopted: Any) -> bool:
    """Whether an adoption still stands: the spec names the bundle it was adopted over, and
    the adopted one is this ModelDeployment's own output (never a URI written elsewhere)."""
    if t is None or not isinstance(adopted, dict):
        return False
    over = adopted.get("over")
    return (
        isinstance(over, dict)
        and over.get("bundleURI") == t.bundle_uri
        and over.get("sha256") == t.sha256
        and str(adopted.get("uri", "")).startswith(t.location + "/")
        and bool(adopted.get("sha256"))
        and bool(adopted.get("version"))
    )


def apply(spec: Spec, status: Json, namespace: str, name: str) -> Spec:
    """``spec`` as the reconcile runs it: the adopted bundle in place of the spec's, while the
    adoption stands (an s3:// one fetched with the labelled-data store's S3 settings, as it
    was written; an http(s) one as any http(s) bundle, without credentials)."""
    retrain = status.get("retrain")
    adopted = retrain.get(KEY) if isinstance(retrain, dict) else None
    t = target(spec, namespace, name)
    if spec.retrain is None or not stands(t, adopted):
        return spec
    assert isinstance(adopted, dict)
    model = dataclasses.replace(
        spec.template.model,
        bundle_uri=str(adopted["uri"]),
        sha256=str(adopted["sha256"]),
        version=str(adopted["version"]),
        s3=spec.retrain.labelled_data.s3 if is_s3(str(adopted["uri"])) else None,
        mlflow=None,
    )
    return dataclasses.replace(spec, template=dataclasses.replace(spec.template, model=model))


def is_output(spec: Spec, uri: str) -> bool:
    """Whether ``uri`` is one of ``spec``'s retrained bundles (under its output)."""
    rs = spec.retrain
    return bool(rs and rs.output_uri and uri.startswith(rs.output_uri + "/"))


def is_s3(uri: str) -> bool:
    return uri.startswith(sources.S3_SCHEME)

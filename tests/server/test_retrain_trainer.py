"""The example trainer and the gate on a recent labelled window, as the two Jobs run them.

The window is built as the labelled-data store returns it (the card's feature columns plus
the reserved ``_md_*`` columns), from users' own models: a DataFrame pipeline with string,
boolean and integer columns, and a regressor fitted on an array.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modeldeploy.server.bundle import bundle_sha256, load_bundle
from modeldeploy.server.bundling import bundle_model
from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.gate import run as run_gate
from modeldeploy.server.loop import gating, recent, result, trainer
from tests.server.user_models import churn_frame, fitted_churn, fitted_diabetes

WINDOW = trainer.Window("s3://labelled/prefix", None, None)


def as_window(features: Any, labels: Any, version: str = "1") -> Any:
    """Rows as the store gives them: the features, then the reserved columns."""
    frame = pd.DataFrame(features).reset_index(drop=True)
    n = len(frame)
    now = pd.Timestamp.now(tz="UTC")
    frame[rc.COLUMN_TIME] = now
    frame[rc.COLUMN_PREDICTED_AT] = now
    frame[rc.COLUMN_REQUEST_ID] = [secrets.token_hex(16) for _ in range(n)]
    frame[rc.COLUMN_VERSION] = version
    frame[rc.COLUMN_ROLE] = "stable"
    frame[rc.COLUMN_PREDICTION] = np.asarray(labels)
    frame[rc.COLUMN_LABEL] = np.asarray(labels)
    return frame


def shifted_churn(rows: int, seed: int) -> Any:
    """Churn data where the world changed: support now makes customers leave, not stay."""
    frame = churn_frame(rows, seed=seed, plan_p=(0.7, 0.3, 0.0))
    rng = np.random.default_rng(seed + 99)
    logit = -0.5 + 2.5 * frame["has_support"] - 0.4 * frame["tickets"]
    p = 1.0 / (1.0 + np.exp(-logit))
    frame["churned"] = np.where(rng.random(rows) < p, "yes", "no")
    return frame


@pytest.fixture(scope="module")
def stable(tmp_path_factory: pytest.TempPathFactory) -> Any:
    model, frame = fitted_churn()
    out = tmp_path_factory.mktemp("stable") / "churn-1"
    bundle_model(
        model,
        frame,
        "churned",
        name="churn",
        version="1",
        out=out,
        card={"intendedUse": "ranking accounts for the retention team", "caveats": ["synthetic"]},
    )
    return load_bundle(out, bundle_sha256(out))


@pytest.fixture(scope="module")
def window() -> Any:
    frame = shifted_churn(2000, seed=5)
    return as_window(frame.drop(columns="churned"), frame["churned"])


def test_the_split_is_a_quarter_by_request_id_and_the_same_for_both_jobs(window: Any) -> None:
    train, held = recent.split(window)
    assert len(train) + len(held) == len(window)
    assert 0.2 < len(held) / len(window) < 0.3
    again_train, again_held = recent.split(window.sample(frac=1.0, random_state=3))
    assert set(held[rc.COLUMN_REQUEST_ID]) == set(again_held[rc.COLUMN_REQUEST_ID])
    assert not set(train[rc.COLUMN_REQUEST_ID]) & set(held[rc.COLUMN_REQUEST_ID])


def test_retrain_refits_the_stable_pipeline_with_its_lineage(
    stable: Any, window: Any, tmp_path: Path
) -> None:
    card, digest = trainer.retrain(
        stable,
        window,
        version="2",
        out=tmp_path / "churn-2",
        window=WINDOW,
        run="churn-r1",
        trainer_image="modeldeploy/server:test",
    )
    new = load_bundle(tmp_path / "churn-2", digest)
    assert (card.name, card.version) == ("churn", "2")
    # The same pipeline, refitted: same steps, new parameters.
    assert [name for name, _ in new.model.steps] == [name for name, _ in stable.model.steps]
    assert new.model is not stable.model
    lineage = card.training_data
    train, held = recent.split(window)
    assert lineage["rows"] == len(train) and lineage["held_out_rows"] == len(held)
    assert lineage["replaces"] == {"name": "churn", "version": "1", "sha256": stable.sha256}
    assert lineage["run"] == "churn-r1" and lineage["trainer_image"] == "modeldeploy/server:test"
    assert lineage["window"]["location"] == "s3://labelled/prefix"
    assert lineage["fingerprint"].startswith("sha256:")
    # The author's words carry over; so does every category the stable accepted, though the
    # window had no enterprise customer at all.
    assert card.intended_use == "ranking accounts for the retention team"
    assert card.caveats == ("synthetic",)
    plan = next(f for f in card.features if f.name == "plan")
    assert "enterprise" in plan.categories
    assert card.feature_names == stable.card.feature_names
    assert card.input_format == stable.card.input_format == "dataframe"
    # Its metrics were measured on the held-out rows, which it never saw.
    assert card.evaluation["rows"] == len(held)


def test_the_gate_passes_the_retrained_model_on_held_out_rows_and_refuses_the_old_one(
    stable: Any, window: Any, tmp_path: Path
) -> None:
    _, digest = trainer.retrain(stable, window, version="2", out=tmp_path / "c", window=WINDOW)
    _, held = recent.split(window)
    decision = run_gate(
        tmp_path / "c",
        stable.source,
        None,
        candidate_sha256=digest,
        current_sha256=stable.sha256,
        frame=held,
        target=rc.COLUMN_LABEL,
    )
    assert decision.promote, decision
    assert decision.rows == len(held)
    # The other way round (the stable as a candidate against the retrained one) must fail:
    # the stable no longer fits the world the recent labels describe.
    backwards = run_gate(
        stable.source,
        tmp_path / "c",
        None,
        candidate_sha256=stable.sha256,
        current_sha256=digest,
        frame=held,
        target=rc.COLUMN_LABEL,
    )
    assert not backwards.promote
    answer = gating.answer(backwards)
    assert answer[rc.RESULT_PASSED] is False
    assert "failed: vs current" in answer[rc.RESULT_SUMMARY]
    text = result.encode(answer)
    assert len(text.encode()) <= rc.TERMINATION_MESSAGE_MAX
    assert json.loads(text)[rc.RESULT_SUMMARY] == answer[rc.RESULT_SUMMARY]


def test_too_few_labelled_rows_train_nothing(stable: Any, window: Any, tmp_path: Path) -> None:
    with pytest.raises(trainer.TrainError, match="fewer than the minimum 200"):
        trainer.retrain(stable, window.head(150), version="2", out=tmp_path / "x", window=WINDOW)
    assert not (tmp_path / "x").exists()


def test_a_regressor_fitted_on_an_array_is_retrained_too(tmp_path: Path) -> None:
    model, x, y = fitted_diabetes()
    names = [f"x{i}" for i in range(x.shape[1])]
    out = tmp_path / "d1"
    bundle_model(model, x, y, name="diabetes", version="1", out=out, feature_names=names)
    current = load_bundle(tmp_path / "d1", bundle_sha256(tmp_path / "d1"))
    rng = np.random.default_rng(0)
    rows = np.vstack([x, x]) + rng.normal(0, 0.01, (2 * len(x), x.shape[1]))
    labels = np.concatenate([y, y]) * 1.5  # the target's scale moved
    frame = as_window(pd.DataFrame(rows, columns=names), labels)
    card, digest = trainer.retrain(current, frame, version="2", out=tmp_path / "d2", window=WINDOW)
    new = load_bundle(tmp_path / "d2", digest)
    assert card.input_format == "array" and card.output.kind == "regression"
    _, held = recent.split(frame)
    decision = run_gate(
        tmp_path / "d2",
        tmp_path / "d1",
        None,
        candidate_sha256=digest,
        current_sha256=current.sha256,
        frame=held,
        target=rc.COLUMN_LABEL,
    )
    assert decision.promote, decision
    assert float(np.mean(new.model.predict(held[names].to_numpy()))) > float(
        np.mean(current.model.predict(held[names].to_numpy()))
    )


def test_a_long_gate_table_is_cut_to_the_termination_message_failed_checks_first() -> None:
    checks = [
        {"name": f"check {i}", "value": "x" * 60, "threshold": "y", "passed": i % 17 != 0}
        for i in range(200)
    ]
    answer = {rc.RESULT_PASSED: False, rc.RESULT_SUMMARY: "12 failed", rc.RESULT_CHECKS: checks}
    text = result.encode(answer)
    assert len(text.encode()) <= rc.TERMINATION_MESSAGE_MAX
    decoded = json.loads(text)
    assert decoded["checksCut"] is True and decoded[rc.RESULT_SUMMARY] == "12 failed"
    kept = decoded[rc.RESULT_CHECKS]
    failed = [c for c in checks if c["passed"] is False]
    assert kept[: len(failed)] == failed
    short = {rc.RESULT_PASSED: True, rc.RESULT_SUMMARY: "ok", rc.RESULT_CHECKS: checks[:2]}
    assert json.loads(result.encode(short)) == short


def drifted_window(old_rows: int, new_rows: int) -> tuple[Any, Any]:
    """A window whose first rows are the old inputs (every plan) and whose last ones, from
    the returned moment on, are the new (no enterprise customer at all)."""
    old, new = churn_frame(old_rows, seed=7), shifted_churn(new_rows, seed=8)
    start = pd.Timestamp("2026-12-01T10:00:00Z")
    onset = start + pd.Timedelta(minutes=50)
    frame = as_window(
        pd.concat([old, new]).drop(columns="churned"), pd.concat([old, new])["churned"]
    )
    times = [start + pd.Timedelta(seconds=i) for i in range(old_rows)] + [
        onset + pd.Timedelta(milliseconds=10 * i) for i in range(new_rows)
    ]
    frame[rc.COLUMN_PREDICTED_AT] = pd.to_datetime(times, utc=True)
    frame[rc.COLUMN_TIME] = frame[rc.COLUMN_PREDICTED_AT]
    return frame, onset.to_pydatetime()


def plan_reference(card: Any) -> dict[str, float]:
    spec = next(f for f in card.features if f.name == "plan")
    ref = card.reference_for("plan")
    return dict(zip(spec.categories, ref.fractions, strict=False))


def test_the_drift_reference_is_the_rows_since_the_drift_began(stable: Any, tmp_path: Path) -> None:
    # Three old rows to one new, as a day's window with drift in its last hours gives: a
    # reference from every row would still expect enterprise customers a quarter of the time.
    frame, onset = drifted_window(3000, 1000)
    whole, _ = trainer.retrain(stable, frame, version="2", out=tmp_path / "a", window=WINDOW)
    assert plan_reference(whole)["enterprise"] > 0.1
    assert whole.training_data["reference"] == {"since": None, "rows": whole.reference_size}
    card, digest = trainer.retrain(
        stable, frame, version="2", out=tmp_path / "b", window=WINDOW, reference_since=onset
    )
    train, _ = recent.split(frame)
    since_onset = int((train[rc.COLUMN_PREDICTED_AT] >= pd.Timestamp(onset)).sum())
    assert card.reference_size == since_onset < len(train)
    assert plan_reference(card)["enterprise"] == 0.0
    assert card.training_data["reference"] == {"since": onset.isoformat(), "rows": since_onset}
    # It was still fitted on the whole window, and its bundle loads with the new profile.
    assert card.training_data["rows"] == len(train)
    assert load_bundle(tmp_path / "b", digest).card.reference_size == since_onset


def test_too_few_rows_since_the_drift_began_keep_the_whole_window_as_reference(
    stable: Any, tmp_path: Path
) -> None:
    frame, onset = drifted_window(2000, 100)
    card, _ = trainer.retrain(
        stable, frame, version="2", out=tmp_path / "c", window=WINDOW, reference_since=onset
    )
    train, _ = recent.split(frame)
    assert card.reference_size == len(train)
    described = card.training_data["reference"]
    assert described["rows"] == len(train) and described["since"] == onset.isoformat()
    assert "the whole window is the reference" in described["fallback"]

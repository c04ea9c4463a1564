"""skops bundles: the loader rebuilds only the types the pinned card trusts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from user_models import fitted_churn

from modeldeploy.cli import main
from modeldeploy.server import bundle as b
from modeldeploy.server.bundling import bundle_model
from modeldeploy.server.contract import CARD_FILE, MODEL_FILE, MODEL_FILE_SKOPS
from modeldeploy.server.digest import folder_digest
from modeldeploy.server.fetch import fetch

TREE = "sklearn.tree._tree.Tree"


def skops_bundle(out: Path) -> tuple[object, object, str]:
    model, frame = fitted_churn()
    _, digest = bundle_model(
        model, frame, "churned", name="churn", version="1", out=out, model_format="skops"
    )
    return model, frame, digest


def repin(folder: Path, edit: object) -> str:
    """Edit the card as the bundle's author could, and pin the result (a new digest)."""
    card = json.loads((folder / CARD_FILE).read_text())
    edit(card)  # type: ignore[operator]
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder_digest(folder)


def test_a_skops_bundle_records_its_trusted_types_and_predicts_as_the_model(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "churn"
    model, frame, digest = skops_bundle(folder)
    assert sorted(p.name for p in folder.iterdir()) == [CARD_FILE, MODEL_FILE_SKOPS]
    loaded = b.load_bundle(folder, digest)
    assert loaded.card.serialization == "skops" and TREE in loaded.card.trusted_types
    x = frame.drop(columns="churned")  # type: ignore[attr-defined]
    assert np.array_equal(loaded.model.predict_proba(x), model.predict_proba(x))  # type: ignore[attr-defined]
    # A joblib bundle's card is what it always was: no serialization fields at all.
    _, joblib_digest = bundle_model(
        model, frame, "churned", name="c", version="1", out=tmp_path / "j"
    )
    card = json.loads((tmp_path / "j" / CARD_FILE).read_text())
    assert "serialization" not in card and "trusted_types" not in card
    assert b.load_bundle(tmp_path / "j", joblib_digest).card.serialization == "joblib"


def test_a_type_the_card_does_not_trust_is_refused_before_it_is_built(tmp_path: Path) -> None:
    folder = tmp_path / "churn"
    skops_bundle(folder)
    pinned = repin(folder, lambda card: card.update(trusted_types=[]))
    with pytest.raises(b.BundleError, match=f"does not trust: {TREE}.*refused"):
        b.load_bundle(folder, pinned)


def test_the_card_and_the_file_must_agree_on_the_format(tmp_path: Path) -> None:
    folder = tmp_path / "churn"
    skops_bundle(folder)
    pinned = repin(folder, lambda card: (card.pop("serialization"), card.pop("trusted_types")))
    with pytest.raises(b.BundleError, match="stored as joblib, the bundle holds model.skops"):
        b.load_bundle(folder, pinned)
    (folder / MODEL_FILE).write_bytes(b"not used")
    with pytest.raises(b.BundleError, match="holds both"):
        b.load_bundle(folder, pinned)


def test_a_skops_archive_is_fetched_pinned_and_loads(tmp_path: Path) -> None:
    archive = tmp_path / "churn.tar.gz"
    _, frame, digest = skops_bundle(archive)
    dest = tmp_path / "placed"
    fetch(str(archive), dest, sha256=digest)
    assert b.load_bundle(dest, digest).card.serialization == "skops"
    with pytest.raises(Exception, match="refusing"):
        fetch(str(archive), tmp_path / "other", sha256="0" * 64)
    assert not (tmp_path / "other").exists()


def test_the_command_line_writes_skops_with_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import joblib

    model, frame = fitted_churn()
    joblib.dump(model, tmp_path / "model.joblib")
    frame.to_csv(tmp_path / "ref.csv", index=False)  # type: ignore[attr-defined]
    out = tmp_path / "bundle"
    args = ["bundle", str(tmp_path / "model.joblib"), str(out), "--data", str(tmp_path / "ref.csv")]
    code = main(
        [*args, "--target", "churned", "--name", "churn", "--version", "1", "--format", "skops"]
    )
    assert code == 0
    digest = capsys.readouterr().out.strip()
    assert (out / MODEL_FILE_SKOPS).is_file() and not (out / MODEL_FILE).exists()
    assert b.load_bundle(out, digest).card.trusted_types

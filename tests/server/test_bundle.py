"""The bundle: writing, loading, digest pinning (before any unpickling), archives, the card."""

from __future__ import annotations

import json
import pickle
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modeldeploy.server import bundle as b
from modeldeploy.server.card import CardError, ModelCard
from modeldeploy.server.contract import CARD_FILE, CARD_SCHEMA_VERSION, MODEL_FILE
from modeldeploy.server.examples import FEATURE_NAMES, build_example, generate_traffic

Built = Any  # the session fixture's (path, sha256) records


class _WritesMarker:
    """Unpickling this object creates the file at ``path``: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _hostile_bundle(tmp_path: Path, good: Built, marker: Path) -> tuple[Path, str]:
    folder = tmp_path / "hostile"
    shutil.copytree(good.path, folder)
    data = pickle.dumps(_WritesMarker(marker))
    (folder / MODEL_FILE).write_bytes(data)
    return folder, b.bundle_sha256(folder)


def test_card_lists_everything_the_design_asks_for(bundles: dict[str, Built]) -> None:
    card = json.loads((bundles["good"].path / CARD_FILE).read_text())
    for key in (
        "name",
        "version",
        "created",
        "algorithm",
        "hyperparameters",
        "training_data",
        "metrics",
        "intended_use",
        "out_of_scope",
        "caveats",
        "features",
        "output",
        "reference",
        "prediction_reference",
        "sha256",
    ):
        assert card[key] not in (None, "", [], {}), key
    assert card["schema_version"] == CARD_SCHEMA_VERSION
    assert card["training_data"]["fingerprint"].startswith("sha256:")
    assert card["hyperparameters"]["n_estimators"] == 150
    assert [f["name"] for f in card["features"]] == list(FEATURE_NAMES)
    assert card["sha256"] == b.file_sha256(bundles["good"].path / MODEL_FILE)
    for ref in card["reference"]:
        assert sum(ref["fractions"]) == pytest.approx(1.0)
    weekend = next(r for r in card["reference"] if r["name"] == "is_weekend")
    assert weekend["edges"] == [] and len(weekend["fractions"]) == 2


def test_load_returns_a_working_model(bundles: dict[str, Built]) -> None:
    loaded = b.load_bundle(bundles["good"].path, bundles["good"].sha256)
    proba = loaded.model.predict_proba(generate_traffic(10, seed=1))
    assert proba.shape == (10, 2)
    assert loaded.card.version == "1.0.0-good"
    assert loaded.sha256 == bundles["good"].sha256


def test_digest_may_carry_a_prefix_and_any_case(bundles: dict[str, Built]) -> None:
    good = bundles["good"]
    assert b.load_bundle(good.path, "sha256:" + good.sha256.upper()).sha256 == good.sha256
    with pytest.raises(b.BundleError, match="64 hex digits"):
        b.load_bundle(good.path, "abc")


def test_a_wrong_digest_never_unpickles(tmp_path: Path, bundles: dict[str, Built]) -> None:
    marker = tmp_path / "pickle-ran"
    folder, real_digest = _hostile_bundle(tmp_path, bundles["good"], marker)
    with pytest.raises(b.IntegrityError, match="refusing to load"):
        b.load_bundle(folder, bundles["good"].sha256)
    assert not marker.exists()
    # The same file with its own digest pinned is unpickled (and runs): the check above is
    # what stopped it. It still fails, because the card names another digest.
    with pytest.raises(b.IntegrityError, match="the card names"):
        b.load_bundle(folder, real_digest)
    assert not marker.exists()
    card = json.loads((folder / CARD_FILE).read_text())
    card["sha256"] = b.sha256_bytes((folder / MODEL_FILE).read_bytes())
    (folder / CARD_FILE).write_text(json.dumps(card))
    real_digest = b.bundle_sha256(folder)
    with pytest.raises(b.BundleError):
        b.load_bundle(folder, real_digest)
    assert marker.exists()


def test_archives_load_like_folders(tmp_path: Path, bundles: dict[str, Built]) -> None:
    archive = b.pack_bundle(bundles["good"].path, tmp_path / "model.tar.gz")
    loaded = b.load_bundle(archive, bundles["good"].sha256)
    assert loaded.card.name == "incident-predictor"
    with pytest.raises(b.IntegrityError):
        b.load_bundle(archive, bundles["drifted"].sha256)


def test_archive_in_one_folder_and_hostile_members(
    tmp_path: Path, bundles: dict[str, Built]
) -> None:
    nested = tmp_path / "nested.tar.gz"
    with tarfile.open(nested, "w:gz") as tar:
        for name in (MODEL_FILE, CARD_FILE):
            tar.add(bundles["good"].path / name, arcname=f"bundle/{name}")
    assert b.load_bundle(nested, bundles["good"].sha256).card.name == "incident-predictor"
    linked = tmp_path / "linked.tar.gz"
    with tarfile.open(linked, "w:gz") as tar:
        tar.add(bundles["good"].path / CARD_FILE, arcname=CARD_FILE)
        info = tarfile.TarInfo(MODEL_FILE)
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(b.BundleError, match="no model.joblib"):
        b.load_bundle(linked, bundles["good"].sha256)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    with pytest.raises(b.BundleError, match="not a readable bundle archive"):
        b.load_bundle(junk, bundles["good"].sha256)


def test_missing_files_are_named(tmp_path: Path, bundles: dict[str, Built]) -> None:
    folder = tmp_path / "partial"
    folder.mkdir()
    shutil.copy(bundles["good"].path / MODEL_FILE, folder)
    with pytest.raises(b.BundleError, match=CARD_FILE):
        b.load_bundle(folder, bundles["good"].sha256)
    with pytest.raises(b.BundleError, match="no such bundle"):
        b.load_bundle(tmp_path / "absent", bundles["good"].sha256)


def test_card_round_trips_and_names_what_is_missing(bundles: dict[str, Built]) -> None:
    text = (bundles["good"].path / CARD_FILE).read_text()
    card = ModelCard.from_json(text)
    assert ModelCard.from_json(card.to_json()) == card
    data = json.loads(text)
    del data["reference"]
    with pytest.raises(CardError, match="'reference'"):
        ModelCard.from_dict(data)
    data = json.loads(text)
    data["reference"][0]["fractions"] = [1.0]
    with pytest.raises(CardError, match="request_rate"):
        ModelCard.from_dict(data)
    with pytest.raises(CardError, match="schema_version"):
        ModelCard.from_dict({**json.loads(text), "schema_version": "v0"})


def test_examples_are_deterministic_in_their_seed(
    tmp_path: Path, bundles: dict[str, Built]
) -> None:
    again = build_example(tmp_path / "again", "1.0.0-good", "good", seed=0)
    # The model file is the same; the card differs only in its creation time.
    assert again.sha256 == b.read_card(bundles["good"].path).sha256
    assert (
        again.training_data["fingerprint"]
        == b.read_card(bundles["good"].path).training_data["fingerprint"]
    )
    assert bundles["good2"].sha256 != bundles["good"].sha256


def test_variants_differ_the_way_they_promise(bundles: dict[str, Built]) -> None:
    from modeldeploy.server import stats

    normal = generate_traffic(2000, seed=42)
    models = {
        k: b.load_bundle(bundles[k].path, bundles[k].sha256)
        for k in ("good", "good2", "diverging", "drifted")
    }
    scores = {k: m.model.predict_proba(normal)[:, 1] for k, m in models.items()}
    moments = {k: stats.Moments.of(v) for k, v in scores.items()}
    # A healthy retrain agrees with the current model; the diverging one is far away.
    assert stats.divergence_z(moments["good2"], moments["good"]) < 2
    assert stats.divergence_z(moments["diverging"], moments["good"]) > 20
    # Normal traffic is far from the drifted model's reference profile.
    drifted = models["drifted"].card
    for j in range(3):
        ref = drifted.reference[j]
        live = stats.bin_counts(normal[:, j], np.asarray(ref.edges))
        assert stats.psi(live, ref.fractions) > stats.PSI_MAJOR, ref.name

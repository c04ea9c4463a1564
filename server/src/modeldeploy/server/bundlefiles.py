"""A bundle's two files as bytes: from a folder or a ``.tar.gz``, and back into an archive.

A bundle holds one model file (``model.joblib`` or ``model.skops``, see ``serialization``)
and ``model-card.json``. Reading never extracts anything to disk and takes only regular
files at the root or in one folder, so links and ``..`` paths in a hostile archive have no
effect; the bytes returned are the very bytes that are then checked against the pin and
parsed.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import NamedTuple

from modeldeploy.server.contract import CARD_FILE, MODEL_FILES
from modeldeploy.server.digest import model_file_of


class BundleError(Exception):
    """A bundle cannot be read: missing file, bad card, unreadable archive."""


class BundleFiles(NamedTuple):
    model_file: str  # which of MODEL_FILES the bundle holds
    model: bytes
    card: bytes


def _one_model(path: Path, names: set[str]) -> str:
    present = [n for n in MODEL_FILES if n in names]
    if not present:
        raise BundleError(f"{path}: bundle has no {' or '.join(MODEL_FILES)}")
    if len(present) > 1:
        raise BundleError(f"{path}: bundle holds both {' and '.join(present)}: keep one")
    return present[0]


def _read_archive(path: Path) -> BundleFiles:
    wanted: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if (
                    base in (*MODEL_FILES, CARD_FILE)
                    and member.isfile()
                    and member.name.count("/") <= 1
                ):
                    if base in wanted:
                        raise BundleError(f"{path}: archive holds more than one {base}")
                    fh = tar.extractfile(member)
                    assert fh is not None  # a regular file always has content
                    wanted[base] = fh.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{path}: not a readable bundle archive: {exc}") from None
    model_file = _one_model(path, set(wanted))
    if CARD_FILE not in wanted:
        raise BundleError(f"{path}: archive has no {CARD_FILE}")
    return BundleFiles(model_file, wanted[model_file], wanted[CARD_FILE])


def _read_folder(path: Path) -> BundleFiles:
    model_file = _one_model(path, {n for n in MODEL_FILES if (path / n).is_file()})
    try:
        return BundleFiles(
            model_file, (path / model_file).read_bytes(), (path / CARD_FILE).read_bytes()
        )
    except FileNotFoundError as exc:
        raise BundleError(f"{path}: bundle has no {Path(exc.filename).name}") from None


def read_bundle_files(path: Path) -> BundleFiles:
    """The raw model and card bytes of a bundle folder or archive."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if path.is_file():
        return _read_archive(path)
    raise BundleError(f"{path}: no such bundle (expected a folder or a .tar.gz)")


def pack_bundle(folder: Path, archive: Path) -> Path:
    """A ``.tar.gz`` of a bundle folder, with its two files at its root."""
    folder = Path(folder)
    try:
        model_file = model_file_of(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise BundleError(f"{folder}: {exc}") from None
    with tarfile.open(archive, "w:gz") as tar:
        for member in (model_file, CARD_FILE):
            tar.add(folder / member, arcname=member)
    return archive

"""The bundle digest a ModelDeployment pins: standard library only, so ``modeldeploy fetch``
can check a bundle before it keeps it, without importing the model's libraries.

The digest is the sha256 of a manifest of the model file's (``model.joblib`` or
``model.skops``, by name) and ``model-card.json``'s sha256 digests, so editing the card
changes it as much as swapping the model does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from modeldeploy.server.contract import CARD_FILE, MODEL_FILE, MODEL_FILES

MANIFEST_HEADER = "modeldeploy-bundle/v1"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """Digest of a file, read in chunks (model files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(model_sha256: str, card_sha256: str, model_file: str = MODEL_FILE) -> str:
    """The bundle digest from the two files' digests (the model file named as it is)."""
    manifest = f"{MANIFEST_HEADER}\n{model_file} {model_sha256}\n{CARD_FILE} {card_sha256}\n"
    return sha256_bytes(manifest.encode())


def bundle_digest(model_bytes: bytes, card_bytes: bytes, model_file: str = MODEL_FILE) -> str:
    """The digest a bundle is pinned by: it covers the model file and the card."""
    return manifest_digest(sha256_bytes(model_bytes), sha256_bytes(card_bytes), model_file)


def model_file_of(folder: Path) -> str:
    """The name of a bundle folder's one model file (``FileNotFoundError`` if it has none,
    ``ValueError`` if it has both formats: which one would be served is not for us to guess)."""
    present = [name for name in MODEL_FILES if (folder / name).is_file()]
    if not present:
        raise FileNotFoundError(2, "no model file", str(folder / MODEL_FILE))
    if len(present) > 1:
        raise ValueError(f"{folder}: holds both {' and '.join(present)}: keep one")
    return present[0]


def folder_digest(folder: Path) -> str:
    """The bundle digest of a bundle folder, streamed (``FileNotFoundError`` if incomplete)."""
    name = model_file_of(folder)
    return manifest_digest(file_sha256(folder / name), file_sha256(folder / CARD_FILE), name)

"""The bundle digest a ModelDeployment pins: standard library only, so ``modeldeploy fetch``
can check a bundle before it keeps it, without importing the model's libraries.

The digest is the sha256 of a manifest of ``model.joblib``'s and ``model-card.json``'s
sha256 digests, so editing the card changes it as much as swapping the model does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from modeldeploy.server.contract import CARD_FILE, MODEL_FILE

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


def manifest_digest(model_sha256: str, card_sha256: str) -> str:
    """The bundle digest from the two files' digests."""
    manifest = f"{MANIFEST_HEADER}\n{MODEL_FILE} {model_sha256}\n{CARD_FILE} {card_sha256}\n"
    return sha256_bytes(manifest.encode())


def bundle_digest(model_bytes: bytes, card_bytes: bytes) -> str:
    """The digest a bundle is pinned by: it covers the model file and the card."""
    return manifest_digest(sha256_bytes(model_bytes), sha256_bytes(card_bytes))


def folder_digest(folder: Path) -> str:
    """The bundle digest of a bundle folder, streamed (``FileNotFoundError`` if incomplete)."""
    return manifest_digest(file_sha256(folder / MODEL_FILE), file_sha256(folder / CARD_FILE))

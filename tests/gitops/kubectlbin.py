"""The kubectl of the local cluster's build (it carries kustomize)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def kubectl_path() -> str:
    """kubectl from the local cluster's build cache, else PATH; a clear error when missing."""
    cache = Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy"))
    for candidate in sorted((cache / "bin").glob("k8s-*/kubectl"), reverse=True):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError(f"kubectl not found in {cache / 'bin'} nor on PATH: run "
                           "`.venv/bin/python -m e2e.cluster build` (make test does)")
    return found

"""The model bundle format and the production model server.

Kept import-free on purpose (standard library only): ``modeldeploy.server.contract`` must be
importable by the operator without pulling in FastAPI or scikit-learn.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("modeldeploy")
except _metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
    __version__ = "0.0.0+source"

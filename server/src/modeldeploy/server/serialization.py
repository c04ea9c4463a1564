"""How a bundle's model is stored: a joblib pickle (the default) or skops.

Unpickling a joblib file runs whatever code the file names, so a joblib bundle is loaded only
after its digest matched the pin: the pin is what makes it safe. skops (``model.skops``) is
safer on its own: its loader rebuilds only types it is told to trust, so even a file that
was swapped for a hostile one cannot run code. The types a skops bundle needs beyond skops'
own safe list (a tree ensemble's ``sklearn.tree._tree.Tree``, say) are recorded in the card
when the bundle is built, and the card is pinned with the model, so what the server trusts
is exactly what the person who built the bundle trusted.

joblib stays the default because it stores any pipeline (custom transformers included) and
every bundle written before this format existed is one; MLflow 3's ``log_model`` writes skops
by default. ``modeldeploy bundle --format skops`` writes the safer one.

Standard library at import (joblib and skops are imported when used): the operator image,
which has neither, imports this through ``modeldeploy register``'s command line.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modeldeploy.server.contract import MODEL_FILE, MODEL_FILE_SKOPS

JOBLIB = "joblib"
SKOPS = "skops"
FORMATS = (JOBLIB, SKOPS)
DEFAULT_FORMAT = JOBLIB
FILE_BY_FORMAT = {JOBLIB: MODEL_FILE, SKOPS: MODEL_FILE_SKOPS}


class SerializationError(Exception):
    """The model file cannot be written or read in its format."""


def file_for(fmt: str) -> str:
    try:
        return FILE_BY_FORMAT[fmt]
    except KeyError:
        raise SerializationError(
            f"unknown model format {fmt!r} (use {' or '.join(FORMATS)})"
        ) from None


def dump(model: Any, folder: Path, fmt: str = DEFAULT_FORMAT) -> tuple[Path, tuple[str, ...]]:
    """Write ``model`` into ``folder`` in ``fmt``: the file, and (skops) the types it needs
    trusted beyond skops' own safe ones, for the card."""
    path = Path(folder) / file_for(fmt)
    if fmt == JOBLIB:
        import joblib

        joblib.dump(model, path)
        return path, ()
    import skops.io

    try:
        skops.io.dump(model, path)
    except Exception as exc:  # skops refuses what it cannot represent safely
        raise SerializationError(
            f"this model cannot be stored as skops ({type(exc).__name__}: {exc}); use "
            f"--format {JOBLIB}"
        ) from None
    return path, tuple(sorted(skops.io.get_untrusted_types(file=path)))


def load(data: bytes, fmt: str, trusted: Sequence[str] = ()) -> Any:
    """The model from a file's bytes. skops rebuilds only its safe types and ``trusted``
    (the card's list); anything else is refused before it is built."""
    if fmt == JOBLIB:
        import joblib

        return joblib.load(io.BytesIO(data))
    if fmt != SKOPS:
        raise SerializationError(f"unknown model format {fmt!r}")
    import skops.io

    unknown = sorted(set(skops.io.get_untrusted_types(data=data)) - set(trusted))
    if unknown:
        raise SerializationError(
            f"{MODEL_FILE_SKOPS} needs types the card does not trust: {', '.join(unknown)} "
            "(refused without building them)"
        )
    return skops.io.loads(data, trusted=list(trusted))

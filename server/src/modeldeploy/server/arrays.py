"""The numpy array types the server passes around, named once."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

# Feature rows, scores, probabilities, reference edges: always float64.
FloatArray: TypeAlias = NDArray[np.float64]
# Bin and class indices (what searchsorted, bincount and argmax return).
IndexArray: TypeAlias = NDArray[np.intp]
# Integer labels and counters kept as int64.
IntArray: TypeAlias = NDArray[np.int64]
# An estimator's predicted values or a target column: their dtype is the model's classes'
# (integers, floats or strings), known only at run time.
ValueArray: TypeAlias = NDArray[Any]

"""The reference profile of each feature: what drift is measured against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modeldeploy.server.arrays import FloatArray
from modeldeploy.server.card import FeatureReference, FeatureSpec
from modeldeploy.server.stats import bin_counts, fractions

DEFAULT_BINS = 10


def profile_features(
    codes: FloatArray, specs: Sequence[FeatureSpec], bins: int = DEFAULT_BINS
) -> tuple[FeatureReference, ...]:
    """Quantile bin edges of numeric features, category shares of discrete ones.

    ``codes`` is the reference data as ``frame.Encoder`` encodes it: numeric columns as
    they are, discrete columns as the index of their category (so a value outside the
    categories, ``len(categories)``, cannot be in a reference).
    """
    if codes.ndim != 2 or codes.shape[1] != len(specs):
        raise ValueError(f"reference data has shape {codes.shape}, expected (rows, {len(specs)})")
    if len(codes) == 0:
        raise ValueError("reference data has no rows")
    profiles = []
    for column, spec in zip(codes.T, specs, strict=True):
        column = np.asarray(column, dtype=np.float64)
        if spec.discrete:
            k = len(spec.categories)
            if (column >= k).any():
                raise ValueError(
                    f"reference data for {spec.name!r} has values outside its categories"
                )
            counts = np.bincount(column.astype(np.intp), minlength=k)
            edges: tuple[float, ...] = ()
        else:
            qs = np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1])
            edge_arr = np.unique(qs)
            counts = bin_counts(column, edge_arr)
            edges = tuple(float(e) for e in edge_arr)
        profiles.append(
            FeatureReference(
                name=spec.name,
                edges=edges,
                fractions=tuple(float(f) for f in fractions(counts)),
                mean=float(column.mean()),
                std=float(column.std()),
                minimum=float(column.min()),
                maximum=float(column.max()),
            )
        )
    return tuple(profiles)

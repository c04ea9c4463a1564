"""Pure statistics for drift and divergence, shared by ``/drift``, the promotion gate and tests.

Everything here works on counts over the reference bins a model card carries, because that
is what the server (and Prometheus) can keep cheaply: a live window is a vector of bin
counts, never the raw values. Each function is the same formula the README writes in
PromQL, so the server's report and the cluster's alerting rules agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _sps

from modeldeploy.server.arrays import FloatArray, IndexArray

# Added to every bin's fraction before the log in PSI: an empty bin would make it infinite.
PSI_EPSILON = 1e-4

# Conventional PSI reading: below 0.1 stable, 0.1 to 0.25 moderate shift, above 0.25 major.
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25


def bin_index(values: FloatArray, edges: FloatArray) -> IndexArray:
    """Index of the reference bin of each value (vectorised, one ``searchsorted``).

    ``edges`` are the inner edges, ascending; bin ``i`` holds ``edges[i-1] <= x < edges[i]``,
    so there are ``len(edges) + 1`` bins and the outer two are open-ended.
    """
    return np.searchsorted(edges, values, side="right")


def bin_counts(values: FloatArray, edges: FloatArray) -> IndexArray:
    """Counts of ``values`` over the bins defined by ``edges`` (``len(edges) + 1`` of them)."""
    return np.bincount(bin_index(values, edges), minlength=len(edges) + 1)


def fractions(counts: ArrayLike) -> FloatArray:
    """Counts as fractions of their total (all zeros stay zeros)."""
    arr = np.asarray(counts, dtype=np.float64)
    total = arr.sum()
    return arr / total if total > 0 else np.zeros_like(arr)


def psi(
    live_counts: ArrayLike,
    reference_fractions: ArrayLike,
    epsilon: float = PSI_EPSILON,
) -> float:
    """Population stability index of live counts against the reference fractions.

    ``sum((p_live - p_ref) * ln(p_live / p_ref))`` with ``epsilon`` added to both fractions so
    an empty bin counts as rare rather than impossible.
    """
    live = fractions(live_counts) + epsilon
    ref = np.asarray(reference_fractions, dtype=np.float64) + epsilon
    if live.shape != ref.shape:
        raise ValueError(f"live has {live.size} bins, reference has {ref.size}")
    return float(np.sum((live - ref) * np.log(live / ref)))


@dataclass(frozen=True)
class StatResult:
    """A statistic and its p-value."""

    statistic: float
    p_value: float


def ks_binned(
    live_counts: ArrayLike,
    reference_fractions: ArrayLike,
    reference_size: int,
) -> StatResult:
    """Two-sample Kolmogorov-Smirnov test on binned data.

    The statistic is the largest gap between the live and reference cumulative fractions
    at the bin edges, which is exactly ``scipy.stats.ks_2samp`` on the two samples' bin
    indices. The p-value is scipy's asymptotic one (Kolmogorov distribution at the
    effective size ``n*m/(n+m)``); binning can only make the statistic smaller, so the
    test is conservative.
    """
    live = np.asarray(live_counts, dtype=np.float64)
    n = float(live.sum())
    if n <= 0 or reference_size <= 0:
        return StatResult(0.0, 1.0)
    cum_live = np.cumsum(live) / n
    cum_ref = np.cumsum(np.asarray(reference_fractions, dtype=np.float64))
    d = float(np.max(np.abs(cum_live - cum_ref)))
    m = float(reference_size)
    en = n * m / (n + m)
    p = float(_sps.kstwo.sf(d, np.round(en)))
    return StatResult(d, min(max(p, 0.0), 1.0))


def chi_square(live_counts: ArrayLike, reference_fractions: ArrayLike) -> StatResult:
    """Pearson's chi-square goodness of fit of live counts to the reference fractions.

    Categories the reference never saw get a tiny expected share (``PSI_EPSILON``) so that a
    new category shows as a huge statistic instead of a division by zero.
    """
    live = np.asarray(live_counts, dtype=np.float64)
    n = float(live.sum())
    if n <= 0:
        return StatResult(0.0, 1.0)
    ref = np.asarray(reference_fractions, dtype=np.float64) + PSI_EPSILON
    expected = n * ref / ref.sum()
    stat = float(np.sum((live - expected) ** 2 / expected))
    dof = max(live.size - 1, 1)
    return StatResult(stat, float(_sps.chi2.sf(stat, dof)))


def bonferroni_alpha(alpha: float, tests: int) -> float:
    """Per-test significance level so the family-wise error rate stays at most ``alpha``."""
    return alpha / max(tests, 1)


def bonferroni_reject(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which of ``p_values`` are significant after a Bonferroni correction for their number."""
    level = bonferroni_alpha(alpha, len(p_values))
    return [p < level for p in p_values]


@dataclass(frozen=True)
class Moments:
    """Count, sum and sum of squares: what the server exports, enough for mean and variance."""

    count: float
    total: float
    total_squares: float

    @classmethod
    def of(cls, values: ArrayLike) -> Moments:
        arr = np.asarray(values, dtype=np.float64)
        return cls(float(arr.size), float(arr.sum()), float(np.dot(arr, arr)))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else math.nan

    @property
    def variance(self) -> float:
        """Population variance ``E[x^2] - E[x]^2`` (clamped at zero against rounding)."""
        if self.count <= 0:
            return math.nan
        return max(self.total_squares / self.count - self.mean**2, 0.0)

    @property
    def standard_error(self) -> float:
        """Standard error of the mean, ``sqrt(variance / count)``."""
        if self.count <= 0:
            return math.nan
        return math.sqrt(self.variance / self.count)


def divergence_z(candidate: Moments, stable: Moments) -> float:
    """How many standard errors apart two means are: ``|m1 - m2| / sqrt(se1^2 + se2^2)``.

    The prediction-divergence rule fires when this exceeds 2. A zero combined standard
    error with different means is infinitely divergent; equal means are 0.
    """
    diff = abs(candidate.mean - stable.mean)
    se = math.sqrt(candidate.standard_error**2 + stable.standard_error**2)
    if math.isnan(diff) or math.isnan(se):
        return math.nan
    if se == 0:
        return 0.0 if diff == 0 else math.inf
    return diff / se

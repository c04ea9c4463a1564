"""Concept drift on the labelled stream: a change in the model's error, found as it happens.

Input drift (PSI, KS, chi-square) says the inputs moved; it cannot say the model got worse,
and a model can get worse on inputs that look the same (the relation between inputs and the
label moved: concept drift). The errors of labelled predictions (``/feedback``) can: a
sequential change detector over them raises an alarm a few dozen labels after their mean
went up, and never on a stream whose mean holds.

Two classic detectors, both one-sided (a model getting better is no alarm):

- **CUSUM** (Page, 1954) against the baseline of the first ``warmup`` errors:
  ``S = max(0, S + z - k)`` on the standardised error ``z``; alarm when ``S > h``. Optimal for
  a step of about ``2k`` standard deviations.
- **Page-Hinkley** against the running mean: ``m = sum(z - mean(z) - delta)``; alarm when
  ``m - min(m) > lambda``. It follows a slow drift of the baseline, so it reacts to changes
  that are abrupt rather than to a slow creep.

Errors are standardised by the warm-up's mean and standard deviation, so the same defaults
suit a classifier's ``|1{label = positive} - p|`` and a regressor's ``|label - prediction|``
whatever its unit. After an alarm a detector starts over (a new warm-up on the new level),
so the next change is found too; the alarm count is what Prometheus sees
(``modeldeploy_concept_drift_alarms_total``), beside each statistic as a share of its
threshold (``modeldeploy_concept_drift_statistic``: 1 is the alarm level).

Defaults, chosen on seeded streams and checked by ``tests/server/test_changepoint.py``: over
1.2 million unchanged errors (normal, and skewed like a classifier's) CUSUM raised no alarm
and Page-Hinkley one. After a rise of one standard deviation CUSUM alarms after a median of
26 labels (at most 49 in 20 runs), Page-Hinkley after 37 (at most 52); when a classifier's
world moves by 0.3 in probability, after 60 and 69 (at most 247 and 149).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WARMUP = 300  # errors that set the baseline (and its spread) before any alarm
MIN_SPREAD = 1e-9  # a constant warm-up (a perfect model) still standardises

CUSUM_K = 0.5  # allowance, in standard deviations: tuned for a rise of about 1 sd
CUSUM_H = 15.0  # threshold, in standard deviations
PAGE_HINKLEY_DELTA = 0.2  # tolerated rise over the running mean, in standard deviations
PAGE_HINKLEY_LAMBDA = 30.0  # threshold, in standard deviations

DETECTORS = ("cusum", "page_hinkley")


@dataclass
class _Baseline:
    """Welford's running mean and variance of the warm-up."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    @property
    def spread(self) -> float:
        return max(math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0, MIN_SPREAD)


@dataclass
class _Detector:
    """What both detectors share: the warm-up that sets the baseline, standardisation, the
    alarm count, and starting over after an alarm."""

    warmup: int = WARMUP
    statistic: float = 0.0
    alarms: int = 0
    seen: int = 0
    _base: _Baseline = field(default_factory=_Baseline)

    def _standardised(self, x: float) -> float | None:
        """``x`` in standard deviations from the baseline; None while warming up."""
        self.seen += 1
        if self._base.n < self.warmup:
            self._base.add(x)
            return None
        return (x - self._base.mean) / self._base.spread

    def _alarm(self) -> bool:
        self.alarms += 1
        self.statistic, self._base = 0.0, _Baseline()
        return True


@dataclass
class Cusum(_Detector):
    """One-sided CUSUM of standardised errors against the warm-up's baseline."""

    k: float = CUSUM_K
    h: float = CUSUM_H

    @property
    def share(self) -> float:
        """The statistic as a share of the threshold (1 is an alarm)."""
        return self.statistic / self.h

    def update(self, x: float) -> bool:
        """Take one error; True when this one raised an alarm (the detector starts over)."""
        z = self._standardised(x)
        if z is None:
            return False
        self.statistic = max(0.0, self.statistic + z - self.k)
        return self.statistic > self.h and self._alarm()


@dataclass
class PageHinkley(_Detector):
    """One-sided Page-Hinkley test of standardised errors against their running mean."""

    delta: float = PAGE_HINKLEY_DELTA
    threshold: float = PAGE_HINKLEY_LAMBDA
    _n: int = 0
    _mean: float = 0.0  # running mean of the standardised errors, the warm-up's included
    _cumulative: float = 0.0
    _minimum: float = 0.0

    @property
    def share(self) -> float:
        return self.statistic / self.threshold

    def update(self, x: float) -> bool:
        z = self._standardised(x)
        if z is None:
            return False
        if self._n == 0:
            self._n = self._base.n  # the warm-up counts in the mean: standardised, it is 0
        self._n += 1
        self._mean += (z - self._mean) / self._n
        self._cumulative += z - self._mean - self.delta
        self._minimum = min(self._minimum, self._cumulative)
        self.statistic = self._cumulative - self._minimum
        if self.statistic <= self.threshold:
            return False
        self._n, self._mean, self._cumulative, self._minimum = 0, 0.0, 0.0, 0.0
        return self._alarm()


@dataclass
class ConceptDrift:
    """Both detectors over one model's labelled errors, fed in arrival order."""

    cusum: Cusum = field(default_factory=Cusum)
    page_hinkley: PageHinkley = field(default_factory=PageHinkley)

    def observe(self, errors: list[float]) -> None:
        for e in errors:
            self.cusum.update(e)
            self.page_hinkley.update(e)

    def by_detector(self) -> dict[str, Cusum | PageHinkley]:
        return {"cusum": self.cusum, "page_hinkley": self.page_hinkley}

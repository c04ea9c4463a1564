"""The concept drift detectors against streams whose change points are known (seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from modeldeploy.server.changepoint import WARMUP, ConceptDrift, Cusum, PageHinkley

Detector = type[Cusum] | type[PageHinkley]
DETECTORS: list[Detector] = [Cusum, PageHinkley]


def classifier_errors(rng: np.random.Generator, n: int, worse: float = 0.0) -> np.ndarray:
    """``|1{label = positive} - p|`` of a calibrated classifier, or of one whose world moved
    by ``worse`` (the true probability rose, the model's did not): skewed, in [0, 1]."""
    p = rng.beta(2, 5, n)
    y = rng.random(n) < np.clip(p + worse, 0, 1)
    return np.abs(y.astype(float) - p)


def first_alarm(detector: Cusum | PageHinkley, stream: np.ndarray) -> int | None:
    for i, x in enumerate(stream):
        if detector.update(float(x)):
            return i
    return None


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize("seed", range(5))
def test_no_alarm_while_the_errors_hold(cls: Detector, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for stream in (rng.normal(0.3, 0.1, 10_000), classifier_errors(rng, 10_000)):
        d = cls()
        assert first_alarm(d, stream) is None
        assert d.alarms == 0 and 0 <= d.share < 1


@pytest.mark.parametrize(("cls", "within"), [(Cusum, 60), (PageHinkley, 90)])
@pytest.mark.parametrize("seed", range(5))
def test_a_rise_of_one_standard_deviation_is_found_within_bounds(
    cls: Detector, within: int, seed: int
) -> None:
    rng = np.random.default_rng(100 + seed)
    change = 500
    stream = np.concatenate([rng.normal(0.3, 0.1, change), rng.normal(0.4, 0.1, 500)])
    at = first_alarm(cls(), stream)
    assert at is not None and change <= at < change + within, at


@pytest.mark.parametrize(("cls", "within"), [(Cusum, 300), (PageHinkley, 300)])
def test_a_classifier_whose_world_moved_is_found(cls: Detector, within: int) -> None:
    rng = np.random.default_rng(7)
    stream = np.concatenate([classifier_errors(rng, 500), classifier_errors(rng, 600, 0.3)])
    at = first_alarm(cls(), stream)
    assert at is not None and 500 <= at < 500 + within, at


@pytest.mark.parametrize("cls", DETECTORS)
def test_a_model_getting_better_is_no_alarm(cls: Detector) -> None:
    rng = np.random.default_rng(11)
    stream = np.concatenate([rng.normal(0.4, 0.1, 500), rng.normal(0.2, 0.1, 5000)])
    assert first_alarm(cls(), stream) is None


@pytest.mark.parametrize("cls", DETECTORS)
def test_the_units_do_not_matter(cls: Detector) -> None:
    """Standardised by the warm-up: a regressor's errors in any unit alarm at the same label."""
    rng = np.random.default_rng(13)
    stream = np.concatenate([rng.normal(0.3, 0.1, 500), rng.normal(0.45, 0.1, 300)])
    at = first_alarm(cls(), stream)
    assert at is not None
    assert first_alarm(cls(), stream * 1000.0 + 5.0) == at


@pytest.mark.parametrize("cls", DETECTORS)
def test_after_an_alarm_it_starts_over_and_finds_the_next_change(cls: Detector) -> None:
    rng = np.random.default_rng(17)
    levels = [0.2] * 500 + [0.35] * 700 + [0.5] * 700
    stream = rng.normal(np.array(levels), 0.1)
    d = cls()
    alarms = [i for i, x in enumerate(stream) if d.update(float(x))]
    assert len(alarms) == 2, alarms
    assert 500 <= alarms[0] < 600 and 1200 <= alarms[1] < 1300, alarms


@pytest.mark.parametrize("cls", DETECTORS)
def test_a_perfect_model_then_errors_alarms_at_once(cls: Detector) -> None:
    """A warm-up of zero errors has no spread; the first real errors are far above it."""
    d = cls()
    assert first_alarm(d, np.zeros(WARMUP)) is None
    assert first_alarm(d, np.full(10, 0.2)) == 0


def test_concept_drift_feeds_both_detectors_in_order() -> None:
    cd = ConceptDrift()
    rng = np.random.default_rng(19)
    cd.observe(list(rng.normal(0.3, 0.1, 500)) + list(rng.normal(0.5, 0.1, 200)))
    assert set(cd.by_detector()) == {"cusum", "page_hinkley"}
    assert all(det.alarms == 1 and det.seen == 700 for det in cd.by_detector().values())

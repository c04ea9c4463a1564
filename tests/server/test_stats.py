"""The drift and divergence statistics against scipy and hand-computed references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from modeldeploy.server import stats


def test_bin_index_uses_half_open_bins_with_open_ends() -> None:
    edges = np.array([1.0, 2.0, 3.0])
    values = np.array([-5.0, 0.999, 1.0, 1.5, 2.0, 2.999, 3.0, 99.0])
    assert stats.bin_index(values, edges).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert stats.bin_counts(values, edges).tolist() == [2, 2, 2, 2]


def test_psi_matches_the_formula_by_hand() -> None:
    live = [30, 20, 50]
    ref = [0.2, 0.3, 0.5]
    p = np.array([0.3, 0.2, 0.5]) + stats.PSI_EPSILON
    q = np.array(ref) + stats.PSI_EPSILON
    expected = float(np.sum((p - q) * np.log(p / q)))
    assert stats.psi(live, ref) == pytest.approx(expected, rel=1e-12)
    assert stats.psi([20, 30, 50], ref) == pytest.approx(0.0, abs=1e-12)
    assert stats.psi([0, 0, 100], ref) > stats.PSI_MAJOR


def test_psi_refuses_mismatched_bins() -> None:
    with pytest.raises(ValueError, match="bins"):
        stats.psi([1, 2], [0.3, 0.3, 0.4])


@pytest.mark.parametrize("shift", [0.0, 0.15, 0.6])
def test_binned_ks_equals_scipy_two_sample_ks_on_bin_indices(shift: float) -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=3000)
    live = rng.normal(loc=shift, size=700)
    edges = np.quantile(reference, np.linspace(0, 1, 11)[1:-1])
    ref_fractions = stats.fractions(stats.bin_counts(reference, edges))
    result = stats.ks_binned(stats.bin_counts(live, edges), ref_fractions, len(reference))
    expected = sps.ks_2samp(
        stats.bin_index(live, edges), stats.bin_index(reference, edges), method="asymp"
    )
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_ks_of_an_empty_window_is_no_evidence() -> None:
    assert stats.ks_binned([0, 0, 0], [0.3, 0.3, 0.4], 100) == stats.StatResult(0.0, 1.0)


def test_chi_square_equals_scipy() -> None:
    live = np.array([48, 35, 17])
    ref = np.array([0.5, 0.3, 0.2])
    result = stats.chi_square(live, ref)
    q = ref + stats.PSI_EPSILON
    expected = sps.chisquare(live, f_exp=live.sum() * q / q.sum())
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_flags_an_unseen_category() -> None:
    result = stats.chi_square([50, 50], [1.0, 0.0])
    assert result.p_value < 1e-12


def test_bonferroni_divides_alpha_by_the_number_of_tests() -> None:
    assert stats.bonferroni_alpha(0.05, 5) == pytest.approx(0.01)
    assert stats.bonferroni_reject([0.009, 0.011, 0.5, 0.0, 0.02], 0.05) == [
        True,
        False,
        False,
        True,
        False,
    ]
    assert stats.bonferroni_reject([0.04], 0.05) == [True]


def test_moments_give_numpy_mean_variance_and_standard_error() -> None:
    values = np.random.default_rng(3).random(501)
    m = stats.Moments.of(values)
    assert m.count == 501
    assert m.mean == pytest.approx(values.mean(), rel=1e-12)
    assert m.variance == pytest.approx(values.var(), rel=1e-9)
    assert m.standard_error == pytest.approx(values.std() / math.sqrt(501), rel=1e-9)
    assert math.isnan(stats.Moments(0, 0, 0).mean)


def test_divergence_z_is_the_welch_style_distance_in_standard_errors() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.2, 0.1, 400), rng.normal(0.5, 0.1, 300)
    ma, mb = stats.Moments.of(a), stats.Moments.of(b)
    expected = abs(a.mean() - b.mean()) / math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert stats.divergence_z(ma, mb) == pytest.approx(expected, rel=1e-9)
    assert stats.divergence_z(ma, mb) > 2
    same = stats.Moments.of(rng.normal(0.2, 0.1, 400))
    assert stats.divergence_z(ma, same) < 3
    constant = stats.Moments.of([1.0, 1.0])
    assert stats.divergence_z(constant, constant) == 0.0
    assert stats.divergence_z(constant, stats.Moments.of([0.0, 0.0])) == math.inf

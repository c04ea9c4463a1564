"""PromQL for drift and divergence: it lives in the contract, ``contract.promql``.

Kept so that ``from modeldeploy.server import promql`` goes on working.
"""

from __future__ import annotations

from modeldeploy.server.contract.promql import (
    BY,
    BY_BIN,
    BY_FEATURE,
    KS_COEFFICIENT_5PCT,
    README_BLOCKS,
    chi_square,
    class_chi_square,
    class_degrees_of_freedom,
    divergence_z,
    feedback_mae,
    feedback_rmse,
    ks,
    ks_critical,
    prediction_mean,
    prediction_standard_error_squared,
    psi,
)

__all__ = [
    "BY",
    "BY_BIN",
    "BY_FEATURE",
    "KS_COEFFICIENT_5PCT",
    "README_BLOCKS",
    "chi_square",
    "class_chi_square",
    "class_degrees_of_freedom",
    "divergence_z",
    "feedback_mae",
    "feedback_rmse",
    "ks",
    "ks_critical",
    "prediction_mean",
    "prediction_standard_error_squared",
    "psi",
]

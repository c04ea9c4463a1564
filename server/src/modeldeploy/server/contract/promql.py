"""Ad-hoc PromQL for drift, divergence and live error, written against the server's metric
names.

The same formulas as ``stats`` (and ``/drift``), but over counters Prometheus scraped from
every replica, for any window, by model, version and role (the chart's recording rules,
``rules``, compute PSI and divergence per ModelDeployment instead). The README prints these
expressions (``README_BLOCKS``, written there by ``modeldeploy rules``); a test evaluates
them in a real Prometheus scraping real servers and compares them with ``stats``. Standard
library only, like the rest of the contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from modeldeploy.server import contract as c

BY: Final = f"{c.LABEL_MODEL}, {c.LABEL_VERSION}, {c.LABEL_ROLE}"
BY_FEATURE: Final = f"{BY}, {c.LABEL_FEATURE}"
BY_BIN: Final = f"{BY_FEATURE}, {c.LABEL_BIN}"
# Kolmogorov's coefficient for a 5% two-sample KS test: reject when
# D > 1.358 * sqrt((n+m)/(n*m)).
KS_COEFFICIENT_5PCT: Final = 1.358


def _increase(metric: str, window: str, by: str, selector: str = "") -> str:
    return f"sum by ({by}) (increase({metric}{selector}[{window}]))"


def _live_fraction(window: str) -> str:
    counts = _increase(c.METRIC_FEATURE_BIN, window, BY_BIN)
    total = _increase(c.METRIC_FEATURE_BIN, window, BY_FEATURE)
    return f"({counts}\n   / ignoring ({c.LABEL_BIN}) group_left\n   {total})"


def _reference_fraction() -> str:
    return f"max by ({BY_BIN}) ({c.METRIC_FEATURE_REFERENCE_FRACTION})"


def psi(window: str = "5m") -> str:
    """Population stability index per feature (1e-4 added to both fractions, as in
    ``stats.psi``)."""
    live, ref = _live_fraction(window), _reference_fraction()
    return (
        f"sum by ({BY_FEATURE}) (\n"
        f"  ({live}\n   - {ref})\n"
        f"  * ln(({live} + 1e-4)\n   / ({ref} + 1e-4))\n)"
    )


def _cumulative(window: str) -> str:
    return _increase(c.METRIC_FEATURE_CUMULATIVE, window, BY_BIN)


def ks(window: str = "5m") -> str:
    """Kolmogorov-Smirnov statistic per feature: the largest gap between cumulative
    fractions."""
    cumulative = _cumulative(window)
    total = f"max by ({BY_FEATURE}) ({cumulative})"
    ref = f"max by ({BY_BIN}) ({c.METRIC_FEATURE_REFERENCE_CUMULATIVE})"
    return (
        f"max by ({BY_FEATURE}) (\n  abs(\n    {cumulative}\n"
        f"    / ignoring ({c.LABEL_BIN}) group_left\n"
        f"    {total}\n    - {ref}\n  )\n)"
    )


def ks_critical(window: str = "5m", coefficient: float = KS_COEFFICIENT_5PCT) -> str:
    """The KS statistic's critical value per feature for live size n and reference size m."""
    n = f"max by ({BY_FEATURE}) ({_cumulative(window)})"
    m = f"max by ({BY}) ({c.METRIC_REFERENCE_ROWS})"
    return (
        f"{coefficient:g} * sqrt(\n  ({n} + on ({BY}) group_left {m})\n"
        f"  / ({n} * on ({BY}) group_left {m})\n)"
    )


def chi_square(window: str = "5m") -> str:
    """Pearson's chi-square per (categorical) feature against the reference fractions."""
    counts = _increase(c.METRIC_FEATURE_BIN, window, BY_BIN)
    total = _increase(c.METRIC_FEATURE_BIN, window, BY_FEATURE)
    expected = (
        f"(({_reference_fraction()} + 1e-4)\n    * on ({BY_FEATURE}) group_left\n    {total})"
    )
    return f"sum by ({BY_FEATURE}) (\n  ({counts}\n   - {expected}) ^ 2\n  / {expected}\n)"


def _moments(role: str, window: str) -> tuple[str, str, str]:
    sel = f'{{{c.LABEL_ROLE}="{role}"}}'
    return (
        _increase(c.METRIC_PREDICTIONS, window, c.LABEL_MODEL, sel),
        _increase(c.METRIC_PREDICTION_SUM, window, c.LABEL_MODEL, sel),
        _increase(c.METRIC_PREDICTION_SUM_SQUARES, window, c.LABEL_MODEL, sel),
    )


def prediction_mean(role: str, window: str = "5m") -> str:
    n, total, _ = _moments(role, window)
    return f"({total}\n / {n})"


def prediction_standard_error_squared(role: str, window: str = "5m") -> str:
    """``variance / n`` with variance ``E[x^2] - E[x]^2``."""
    n, _, squares = _moments(role, window)
    mean = prediction_mean(role, window)
    return f"(({squares}\n  / {n}\n  - {mean} ^ 2)\n / {n})"


def divergence_z(window: str = "5m") -> str:
    """Candidate vs stable mean prediction, in standard errors of the difference (the chart's
    alert fires when above ``rules.DEFAULT_THRESHOLDS.divergence_std_errors``)."""
    return (
        f"abs(\n  {prediction_mean('candidate', window)}\n"
        f"  - {prediction_mean('stable', window)}\n)\n"
        f"/ sqrt(\n  {prediction_standard_error_squared('candidate', window)}\n"
        f"  + {prediction_standard_error_squared('stable', window)}\n)"
    )


def _role(role: str) -> str:
    return f'{{{c.LABEL_ROLE}="{role}"}}'


def _class_counts(role: str, window: str, by: str = f"{c.LABEL_MODEL}, {c.LABEL_CLASS}") -> str:
    return _increase(c.METRIC_PREDICTION_CLASS, window, by, _role(role))


def _class_table(window: str) -> tuple[str, str, str, str]:
    """The two rows of the table over the classes either side has (0 where the other has
    none), and their totals."""
    cand, stable = _class_counts("candidate", window), _class_counts("stable", window)
    return (
        f"({cand}\n    or {stable} * 0)",
        f"({stable}\n    or {cand} * 0)",
        _class_counts("candidate", window, c.LABEL_MODEL),
        _class_counts("stable", window, c.LABEL_MODEL),
    )


def class_chi_square(window: str = "5m") -> str:
    """The 2xK chi-square of the candidate's predicted-class counts against the stable's, per
    model, over the classes either side predicted: ``sum_k (C_k nS - S_k nC)^2 / (nC nS
    (C_k + S_k))`` (the chart's class test, per ModelDeployment and version, is this)."""
    cand, stable, n_c, n_s = _class_table(window)
    on = f"on ({c.LABEL_MODEL}) group_left"
    return (
        f"sum by ({c.LABEL_MODEL}) (\n  ({cand}\n   * {on} {n_s}\n"
        f"   - {stable}\n   * {on} {n_c}) ^ 2\n"
        f"  / ({cand}\n   + {stable} > 0)\n)\n/ ({n_c} * {n_s})"
    )


def class_degrees_of_freedom(window: str = "5m") -> str:
    """Its degrees of freedom: the classes either side predicted, minus 1."""
    cand, stable, _, _ = _class_table(window)
    return f"count by ({c.LABEL_MODEL}) (\n  {cand}\n  + {stable} > 0\n) - 1"


def _feedback(window: str) -> tuple[str, str, str]:
    return (
        _increase(c.METRIC_FEEDBACK_ABS_ERROR, window, BY),
        _increase(c.METRIC_FEEDBACK_SQUARED_ERROR, window, BY),
        _increase(c.METRIC_FEEDBACK_ROWS, window, BY),
    )


def feedback_mae(window: str = "10m") -> str:
    """Live mean absolute error over the rows labelled through ``/feedback``, of a regressor's
    prediction or a classifier's positive-class probability (the chart records it per
    ModelDeployment over one minute: ``modeldeploy:feedback_mae:1m``)."""
    absolute, _, rows = _feedback(window)
    return f"{absolute}\n/ {rows}"


def feedback_rmse(window: str = "10m") -> str:
    """Its root mean squared error: ``sqrt(sum of squared errors / rows)``."""
    _, squared, rows = _feedback(window)
    return f"sqrt(\n  {squared}\n  / {rows}\n)"


# The README's ```promql blocks, by the name of the marker before each one
# (``<!-- promql: NAME -->``), with their default windows.
README_BLOCKS: Final[dict[str, Callable[[], str]]] = {
    "psi": psi,
    "ks": ks,
    "ks_critical": ks_critical,
    "chi_square": chi_square,
    "divergence_z": divergence_z,
    "class_chi_square": class_chi_square,
    "class_degrees_of_freedom": class_degrees_of_freedom,
    "feedback_mae": feedback_mae,
    "feedback_rmse": feedback_rmse,
}

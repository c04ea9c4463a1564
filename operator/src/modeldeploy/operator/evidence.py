"""What Prometheus said about one ModelDeployment at one moment: the analysis' evidence.

``analysis`` builds it from one batched poll per Prometheus; the engine judges a step on it
(``engine.judging``), the stable's drift and the retraining trigger read it too. Plain
frozen dataclasses, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    name: str
    value: float | None
    error: str = ""


RoleVersion = tuple[str, str]  # (pod role, model version)


def alert_name(alert: str) -> str:
    """The rule's name of a firing alert as the sample names it: ``ModelFeatureDrift`` for
    ``ModelFeatureDrift{feature="plan"}`` (the alert with its subject labels)."""
    return alert.partition("{")[0]


def _keyed(raw: Mapping[Any, Any]) -> dict[RoleVersion, Any]:
    """A bare role as a key means "any version" (see ``AnalysisSample``)."""
    return {(k, "") if isinstance(k, str) else k: v for k, v in raw.items()}


@dataclass(frozen=True)
class AnalysisSample:
    """One evaluation of Prometheus at time ``at`` for one ModelDeployment.

    ``error`` set means Prometheus could not be asked (inconclusive). ``firing``,
    ``scraped`` and ``predictions`` are keyed by (pod role, model version): the rules keep
    the server's ``version`` label, so an old candidate's alert never counts against a new
    one. A series without a version (a user's rule that aggregates it away) is keyed by
    version "", which matches every version: such an alert counts against any candidate.
    ``rules`` is every loaded alerting rule's name with "" when healthy, else why not
    (``None``: the rules were not read, so no named alert is known to be loaded).
    ``predictions`` is the server's cumulative prediction counter summed over the pods.
    A firing alert is named with its subject labels (``ModelFeatureDrift{feature="plan"}``),
    so messages say which feature; it is matched by ``alert_name``.
    """

    at: datetime
    error: str = ""
    firing: Mapping[RoleVersion, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    scraped: frozenset[RoleVersion] = frozenset()
    checks: tuple[CheckResult, ...] = ()
    rules: Mapping[str, str] | None = None
    predictions: Mapping[RoleVersion, float] = field(default_factory=dict)
    prometheus: str = ""
    alerts_at: datetime | None = None  # when ``firing`` was read (the fast poll), if later
    # When each firing alert became active, by (role, version, alert as ``firing`` names it).
    active_since: Mapping[tuple[str, str, str], datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "firing", _keyed(self.firing))
        object.__setattr__(self, "predictions", _keyed(self.predictions))
        object.__setattr__(
            self, "scraped", frozenset((k, "") if isinstance(k, str) else k for k in self.scraped)
        )

    def firing_for(self, role: str, version: str) -> list[tuple[str, float]]:
        """Alerts firing for ``role`` at ``version`` (or without a version)."""
        out: list[tuple[str, float]] = []
        for (r, v), alerts in self.firing.items():
            if r == role and v in (version, ""):
                out.extend(alerts)
        return sorted(out)

    def active_since_of(self, role: str, version: str, names: set[str]) -> datetime | None:
        """When the earliest of the named alerts firing for ``role`` at ``version`` (or
        without a version) became active; None when none of them says."""
        times = [
            at
            for (r, v, alert), at in self.active_since.items()
            if r == role and v in (version, "") and alert_name(alert) in names
        ]
        return min(times, default=None)

    def is_scraped(self, role: str, version: str) -> bool:
        return (role, version) in self.scraped or (role, "") in self.scraped

    def predictions_of(self, role: str, version: str) -> float | None:
        """The cumulative predictions of ``role`` at ``version``; None when not scraped."""
        found = self.predictions.get((role, version))
        return self.predictions.get((role, "")) if found is None else found

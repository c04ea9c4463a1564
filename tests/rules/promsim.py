"""Build promtool unit-test files and predict, in Python, what the rules must compute.

The rules are tested with promtool's real PromQL engine; the expected values come from the
same counter samples through the server's own statistics (``modeldeploy.server.stats``), so
a test fails when the PromQL and the server's formulas disagree.

Samples are taken every ``STEP`` seconds from t=0 and every counter starts at 0. Under those
conditions Prometheus's ``increase(x[1m])`` at an evaluation instant t equals
``x(t) - x(max(0, t - 60s))`` exactly: the window's edges fall on samples, and a counter that
starts at 0 is not extrapolated before its first sample.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "charts" / "modeldeploy" / "rules" / "modeldeploy-rules.yaml"
STEP = 15
WINDOW = 60


def promtool_path() -> str:
    """The promtool binary; a clear failure when it is missing (``make test`` installs it)."""
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if not found:
        raise RuntimeError(
            "promtool not found: install the Debian package 'prometheus' (scripts/setup.sh does)"
        )
    return found


def cumulative(increments: Sequence[float]) -> list[float]:
    """Counter samples from per-step increments, starting at 0 at t=0."""
    out = [0.0]
    for inc in increments:
        out.append(out[-1] + inc)
    return out


def phases(*parts: tuple[int, Sequence[float] | float]) -> list[list[float]] | list[float]:
    """Per-step increments: ``(steps, increment)`` pairs, one after another."""
    out: list[Any] = []
    for steps, inc in parts:
        out.extend([inc] * steps)
    return out


def window_delta(samples: Sequence[float], t: int) -> float:
    """``increase(x[1m])`` at instant ``t`` (see the module docstring for why it is exact)."""
    k = t // STEP
    if k < 1 or k >= len(samples):
        raise ValueError(f"no two samples in the window at t={t}s")
    return samples[k] - samples[max(0, k - WINDOW // STEP)]


def first_firing(
    eval_times: Sequence[int], condition: Callable[[int], bool], hold_seconds: int
) -> int | None:
    """The first evaluation at which an alert with ``for: hold_seconds`` fires."""
    since: int | None = None
    for t in eval_times:
        if condition(t):
            since = t if since is None else since
            if t - since >= hold_seconds:
                return t
        else:
            since = None
    return None


def promql_round(value: float, scale: float = 1e6) -> float:
    """What PromQL's ``round(v * scale)`` returns (round half up)."""
    return float(math.floor(value * scale + 0.5))


def fmt_value(value: float) -> str:
    """A float as promtool's series notation reads it back bit for bit."""
    return repr(float(value))


@dataclass
class Series:
    """One input series: a metric name, its labels and its samples."""

    name: str
    labels: Mapping[str, str]
    samples: Sequence[float]

    def to_promtool(self) -> dict[str, str]:
        inner = ", ".join(f'{k}="{v}"' for k, v in self.labels.items())
        return {
            "series": f"{self.name}{{{inner}}}",
            "values": " ".join(fmt_value(v) for v in self.samples),
        }


@dataclass
class UnitTest:
    """One promtool test group."""

    name: str
    series: list[Series] = field(default_factory=list)
    alert_tests: list[dict[str, Any]] = field(default_factory=list)
    expr_tests: list[dict[str, Any]] = field(default_factory=list)

    def to_promtool(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "interval": f"{STEP}s",
            "input_series": [s.to_promtool() for s in self.series],
            "alert_rule_test": self.alert_tests,
            "promql_expr_test": self.expr_tests,
        }


def run_promtool_tests(
    tmp_path: Path, tests: Sequence[UnitTest], extra_rule_files: Sequence[Path] = ()
) -> str:
    """Write a promtool test file for the chart's rules (and ``extra_rule_files``), run it,
    fail with its output."""
    doc = {
        "rule_files": [str(RULES_FILE), *map(str, extra_rule_files)],
        "evaluation_interval": f"{STEP}s",
        "tests": [t.to_promtool() for t in tests],
    }
    path = tmp_path / "rules_test.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run(
        [promtool_path(), "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"promtool test rules failed:\n{output}")
    return output

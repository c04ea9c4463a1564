"""The README's PromQL, evaluated by a real Prometheus scraping real servers on 127.0.0.1.

A stable server of the good model and a candidate of the diverging one get the same
normal traffic (the stable also a shifted batch). Prometheus scrapes both every second;
once it holds their final counters, each expression is evaluated at the instant of the
last scrape (so ``increase`` does not extrapolate) and must equal what ``stats`` computes
from the servers' own ``/metrics``.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import Server, free_port

from modeldeploy.server import promql, stats
from modeldeploy.server.bundle import read_card
from modeldeploy.server.examples import as_records, generate_traffic

README = Path(__file__).resolve().parents[2] / "README.md"
PROMETHEUS = shutil.which("prometheus")


def query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = at
    body = httpx.get(url + "/api/v1/query", params=params, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def bins_from(server: Server, name: str) -> dict[str, list[float]]:
    """Per-feature values of a per-bin series, in bin order (the order the server exports
    them: numeric bins ascending, categories then the unseen bin), from its /metrics."""
    out: dict[str, dict[str, float]] = {}
    for (metric, labels), value in server.metrics().items():
        if metric == name:
            d = dict(labels)
            out.setdefault(d["feature"], {})[d["bin"]] = value
    return {f: list(b.values()) for f, b in out.items()}


@pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (scripts/setup.sh installs it)"
)
def test_readme_promql_agrees_with_the_statistics(
    serve: Callable[..., Server], bundles: dict[str, Any], tmp_path: Path
) -> None:
    stable = serve(bundles["good"])
    candidate = serve(bundles["diverging"], "--role", "candidate")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    targets = ", ".join(f"'{s.url.removeprefix('http://')}'" for s in (stable, candidate))
    config.write_text(
        f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: models\n"
        f"    static_configs:\n      - targets: [{targets}]\n"
    )
    prom_url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed after the test body
    prom = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        # Traffic only after Prometheus holds a first (all-zero) sample of every counter.
        while len(query_or_empty(prom_url, "modeldeploy_predictions_total")) < 2:
            assert prom.poll() is None and time.monotonic() < deadline, (
                tmp_path / "prometheus.log"
            ).read_text()
            time.sleep(0.3)
        normal = as_records(generate_traffic(600, seed=71))
        shifted = as_records(generate_traffic(200, seed=72, shifted=True))
        with stable.client() as a, candidate.client() as b:
            for start in range(0, 600, 50):
                assert (
                    a.post("/predict", json={"instances": normal[start : start + 50]}).status_code
                    == 200
                )
                assert (
                    b.post("/predict", json={"instances": normal[start : start + 50]}).status_code
                    == 200
                )
            for start in range(0, 200, 50):
                assert (
                    a.post("/predict", json={"instances": shifted[start : start + 50]}).status_code
                    == 200
                )
        while {
            r["metric"]["role"]: float(r["value"][1])
            for r in query(prom_url, "modeldeploy_predictions_total")
        } != {"stable": 800.0, "candidate": 600.0}:
            assert time.monotonic() < deadline, "Prometheus did not scrape the final counters"
            time.sleep(0.3)
        # A few more scrapes of the settled counters: ``increase`` extrapolates the last scrape
        # gap over the sampled span, so a longer span keeps that stretch small on a slow machine.
        time.sleep(6)
        at = max(
            float(r["value"][1])
            for r in query(prom_url, "timestamp(modeldeploy_predictions_total)")
        )
        window = "10m"

        # Prometheus scrapes the two servers at different instants, so at one evaluation time
        # one of them has its counts extrapolated a little (``increase`` does that). Fractions
        # and means are ratios and do not move; sample sizes are Prometheus' own counts.
        counted = {
            r["metric"]["role"]: float(r["value"][1])
            for r in query(
                prom_url, f"sum by (role) (increase(modeldeploy_predictions_total[{window}]))", at
            )
        }
        card = read_card(bundles["good"].path)
        live = bins_from(stable, "modeldeploy_feature_bin_total")
        psi = {
            r["metric"]["feature"]: float(r["value"][1])
            for r in query(prom_url, promql.psi(window), at)
            if r["metric"]["role"] == "stable"
        }
        ks = {
            r["metric"]["feature"]: float(r["value"][1])
            for r in query(prom_url, promql.ks(window), at)
            if r["metric"]["role"] == "stable"
        }
        crit = {
            r["metric"]["feature"]: float(r["value"][1])
            for r in query(prom_url, promql.ks_critical(window), at)
            if r["metric"]["role"] == "stable"
        }
        chi = {
            r["metric"]["feature"]: float(r["value"][1])
            for r in query(prom_url, promql.chi_square(window), at)
            if r["metric"]["role"] == "stable"
        }
        for spec, ref in zip(card.features, card.reference, strict=True):
            counts = live[spec.name]
            assert sum(counts) == 800
            # A categorical feature has one more bin, for unseen values (reference share 0).
            fractions = (*ref.fractions, 0.0) if spec.discrete else ref.fractions
            assert psi[spec.name] == pytest.approx(
                stats.psi(counts, fractions), rel=1e-9, abs=1e-12
            )
            if spec.kind == "categorical":
                # Chi-square grows with the sample size, so it sees Prometheus'
                # (extrapolated) counts.
                scaled = [v * counted["stable"] / 800 for v in counts]
                assert chi[spec.name] == pytest.approx(
                    stats.chi_square(scaled, fractions).statistic, rel=1e-3
                )
            else:
                d = stats.ks_binned(counts, fractions, card.reference_size)
                assert ks[spec.name] == pytest.approx(d.statistic, rel=1e-9, abs=1e-12)
                assert crit[spec.name] == pytest.approx(
                    1.358 * math.sqrt((counted["stable"] + 2000) / (counted["stable"] * 2000)),
                    rel=1e-9,
                )
        assert psi["request_rate"] > 0.1 and ks["request_rate"] > crit["request_rate"]

        expected = {}
        for role, server in (("stable", stable), ("candidate", candidate)):
            m = server.metrics()
            own = stats.Moments(
                m[("modeldeploy_predictions_total", ())],
                m[("modeldeploy_prediction_sum_total", ())],
                m[("modeldeploy_prediction_sum_squares_total", ())],
            )
            scale = counted[role] / own.count
            assert 0.8 < scale <= 1.5
            expected[role] = stats.Moments(
                own.count * scale, own.total * scale, own.total_squares * scale
            )
        [z] = query(prom_url, promql.divergence_z(window), at)
        assert z["metric"] == {"model": "incident-predictor"}
        assert float(z["value"][1]) == pytest.approx(
            stats.divergence_z(expected["candidate"], expected["stable"]), rel=1e-9
        )
        assert float(z["value"][1]) > 2
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        log.close()


def query_or_empty(url: str, expr: str) -> list[dict[str, Any]]:
    try:
        return query(url, expr)
    except (httpx.TransportError, ValueError, KeyError):
        return []


def test_readme_prints_the_expressions_that_are_tested() -> None:
    text = README.read_text()
    for expr in (
        promql.psi(),
        promql.ks(),
        promql.ks_critical(),
        promql.chi_square(),
        promql.divergence_z(),
    ):
        assert expr in text
    # Each marked block holds exactly its expression (`modeldeploy rules` writes them), and
    # the README prints every expression of the contract once.
    blocks = re.findall(r"^<!-- promql: (\w+) -->\n```promql\n(.*?)\n```$", text, re.M | re.S)
    assert [name for name, _ in blocks] == list(promql.README_BLOCKS)
    for name, body in blocks:
        assert body == promql.README_BLOCKS[name](), (
            f"README block {name} is stale: run `modeldeploy rules`"
        )

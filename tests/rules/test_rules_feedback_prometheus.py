"""The alerts on /feedback labels in a real Prometheus, loading the chart's rule file as is
(its 15 s groups and its ``for``), scraping a small exporter on 127.0.0.1.

The exporter publishes the model server's feedback counters (same names and labels, text
exposition) for several ModelDeployments at once, each a scenario; every counter grows at a
steady rate from the first scrape, so a one-minute window holds about ``rate * 60`` labels.
One Prometheus run judges all of them: ``ModelLivePerformanceDrop`` must fire for the
candidate that is clearly worse (a classifier by accuracy, a regressor by MAE) and never,
not even pending, for too few labels, a gap within the margin, a gap lost in the noise or
a candidate whose only labelled stable is another ModelDeployment's; ``ModelConceptDrift``
must fire after a detector's alarm counter steps up, for the role and version that raised it.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from promsim import RULES_FILE

from modeldeploy.operator.analysis import index_rules
from modeldeploy.server import contract as c
from modeldeploy.server.contract import rulemodel as rm
from modeldeploy.server.contract import rules

CACHED = sorted((Path.home() / ".cache" / "modeldeploy" / "bin").glob("prometheus-v*/prometheus"))
PROMETHEUS = str(CACHED[-1]) if CACHED else shutil.which("prometheus")
DEADLINE_SECONDS = 150
NAMESPACE = "ml"


@dataclass(frozen=True)
class Stream:
    """One pod's labels: how many arrive per second, and how good the model is on them
    (accuracy for a classifier; a regressor has ``mae`` and its absolute errors spread
    uniformly on [0, 2 mae], so their variance is mae^2 / 3)."""

    md: str
    role: str
    version: str
    per_second: float
    accuracy: float | None = None
    mae: float | None = None
    alarm_after: float | None = None  # seconds after the first scrape; None: never

    def samples(self, elapsed: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        base = (
            ("namespace", NAMESPACE),
            ("modeldeployment", self.md),
            ("role", self.role),
            ("version", self.version),
            ("model", self.md),
        )
        rows = self.per_second * elapsed
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {
            (c.METRIC_FEEDBACK_ROWS, base): rows
        }
        correct = rows * self.accuracy if self.accuracy is not None else 0.0
        incorrect = rows - correct if self.accuracy is not None else 0.0
        out[(c.METRIC_FEEDBACK, (*base, (c.LABEL_OUTCOME, "correct")))] = correct
        out[(c.METRIC_FEEDBACK, (*base, (c.LABEL_OUTCOME, "incorrect")))] = incorrect
        mae = self.mae if self.mae is not None else 0.3
        out[(c.METRIC_FEEDBACK_ABS_ERROR, base)] = rows * mae
        out[(c.METRIC_FEEDBACK_SQUARED_ERROR, base)] = rows * 4 * mae * mae / 3
        for detector in ("cusum", "page_hinkley"):
            fired = self.alarm_after is not None and elapsed >= self.alarm_after
            alarms = 1.0 if fired and detector == "cusum" else 0.0
            out[(c.METRIC_CONCEPT_DRIFT_ALARMS, (*base, (c.LABEL_DETECTOR, detector)))] = alarms
        return out


STREAMS = (
    # Clearly worse: 95% against 60% on 120 labels a side per minute (z about 7).
    Stream("worse", "stable", "1", 2.0, accuracy=0.95),
    Stream("worse", "candidate", "2", 2.0, accuracy=0.6),
    # Always wrong against always right (an infinite z), but 20 labels a side per minute:
    # not enough to judge.
    Stream("few", "stable", "1", 1 / 3, accuracy=1.0),
    Stream("few", "candidate", "2", 1 / 3, accuracy=0.0),
    # 3 points worse on 3600 labels a side: significant (z about 4) but within the margin.
    Stream("close", "stable", "1", 60.0, accuracy=0.9),
    Stream("close", "candidate", "2", 60.0, accuracy=0.87),
    # 10 points worse on 40 labels a side: beyond the margin, within the noise (z about 1).
    Stream("noisy", "stable", "1", 2 / 3, accuracy=0.8),
    Stream("noisy", "candidate", "2", 2 / 3, accuracy=0.7),
    # A bad candidate whose own stable has no labels: another ModelDeployment's stable (the
    # good one of "worse", same version name) must not stand in for it.
    Stream("lone", "candidate", "2", 2.0, accuracy=0.3),
    Stream("lone", "stable", "1", 0.0, accuracy=0.95),
    # A regressor 50% worse in MAE on 120 labels a side (z about 4.5); its stable's detector
    # raises a concept drift alarm 5 s in.
    Stream("house", "stable", "1", 2.0, mae=1.0, alarm_after=5.0),
    Stream("house", "candidate", "2", 2.0, mae=1.5),
)


def _exposition(elapsed: float) -> bytes:
    families: dict[str, list[str]] = {}
    for stream in STREAMS:
        for (name, labels), value in stream.samples(elapsed).items():
            inner = ",".join(f'{k}="{v}"' for k, v in labels)
            families.setdefault(name, []).append(f"{name}{{{inner}}} {value!r}")
    lines = []
    for name, samples in families.items():
        lines += [f"# TYPE {name.removesuffix('_total')} counter", *samples]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def exporter() -> Iterator[str]:
    """The exporter on a free loopback port; its clock starts at the first scrape."""
    started: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if not started:
                started.append(time.monotonic())
            body = _exposition(time.monotonic() - started[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as s:
        return int(s.server_address[1])


@pytest.fixture(scope="module")
def prometheus(exporter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus with the chart's rules, scraping the exporter every second; the
    exporter's labels are kept (as the scrape configuration's target labels would be)."""
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (make setup builds it)")
    folder = tmp_path_factory.mktemp("prom")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {
                "job_name": "models",
                "honor_labels": True,
                "static_configs": [{"targets": [exporter]}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (folder / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _get(url: str, path: str, **params: str) -> Any:
    body = httpx.get(url + path, params=params, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]


def _watch(url: str) -> tuple[dict[tuple[str, str, str], dict[str, str]], set[tuple[str, str]]]:
    """Poll until both expected alerts fire (or the deadline); return the firing alerts by
    (alert, modeldeployment, role) and every (alert, modeldeployment) seen pending or firing."""
    want = {
        (rules.ALERT_LIVE_PERFORMANCE, "worse", "candidate"),
        (rules.ALERT_LIVE_PERFORMANCE, "house", "candidate"),
        (rules.ALERT_CONCEPT_DRIFT, "house", "stable"),
    }
    seen: set[tuple[str, str]] = set()
    firing: dict[tuple[str, str, str], dict[str, str]] = {}
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            alerts = _get(url, "/api/v1/alerts")["alerts"]
        except httpx.TransportError:  # still starting
            alerts = []
        for a in alerts:
            labels = a["labels"]
            seen.add((labels["alertname"], labels.get("modeldeployment", "")))
            if a["state"] == "firing":
                firing[(labels["alertname"], labels["modeldeployment"], labels["role"])] = labels
        if want <= set(firing):
            break
        time.sleep(1)
    return firing, seen


def test_live_performance_and_concept_drift_alerts(prometheus: str) -> None:
    started = time.monotonic()
    firing, seen = _watch(prometheus)
    took = time.monotonic() - started

    worse = firing.get((rules.ALERT_LIVE_PERFORMANCE, "worse", "candidate"))
    assert worse is not None, (firing, seen)
    # Named by the candidate's version, so an old candidate's alert never counts against a
    # new one, and by the test that judged it.
    assert worse["version"] == "2" and worse["test"] == "accuracy"
    house = firing[(rules.ALERT_LIVE_PERFORMANCE, "house", "candidate")]
    assert house["version"] == "2" and house["test"] == "mae"
    concept = firing[(rules.ALERT_CONCEPT_DRIFT, "house", "stable")]
    assert concept["version"] == "1" and concept["detector"] == "cusum"

    # Never pending: too few labels, a gap within the margin, a gap within the noise, no
    # labelled stable of its own; and no concept drift where no detector alarmed.
    for md in ("few", "close", "noisy", "lone"):
        assert (rules.ALERT_LIVE_PERFORMANCE, md) not in seen, md
    assert {md for name, md in seen if name == rules.ALERT_CONCEPT_DRIFT} == {"house"}

    # The recorded gaps are what the streams were built with.
    def value(record: str, md: str) -> float:
        [r] = _get(prometheus, "/api/v1/query", query=f'{record}{{modeldeployment="{md}"}}')[
            "result"
        ]
        return float(r["value"][1])

    assert value(rm.FEEDBACK_ACCURACY_DROP, "worse") == pytest.approx(0.35, abs=1e-6)
    assert value(rm.FEEDBACK_ACCURACY_DROP, "close") == pytest.approx(0.03, abs=1e-6)
    # Each negative is held back by its own guard alone.
    assert value(rm.FEEDBACK_ACCURACY_DROP_ZSCORE, "few") > rules.LIVE_STD_ERRORS
    assert value(rm.FEEDBACK_ACCURACY_DROP, "noisy") == pytest.approx(0.1, abs=1e-6)
    assert value(rm.FEEDBACK_ACCURACY_DROP_ZSCORE, "noisy") < rules.LIVE_STD_ERRORS
    assert value(rm.FEEDBACK_MAE_RISE, "house") == pytest.approx(0.5, abs=1e-6)
    lone = f'{rm.FEEDBACK_ACCURACY_DROP}{{modeldeployment="lone"}}'
    assert not _get(prometheus, "/api/v1/query", query=lone)["result"]
    # The operator's evidence check finds both opt-in alerts loaded and healthy.
    loaded = index_rules(_get(prometheus, "/api/v1/rules")["groups"])
    assert loaded[rules.ALERT_LIVE_PERFORMANCE] == loaded[rules.ALERT_CONCEPT_DRIFT] == ""
    # Measured: from Prometheus' start to the last of the three alerts firing.
    print(f"alerts fired after {took:.0f} s")

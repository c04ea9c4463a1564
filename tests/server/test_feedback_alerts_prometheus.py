"""The alerts on /feedback labels in a real Prometheus, loading the chart's rule file as is
(its 15 s groups and its ``for``), scraping two real model servers and a small exporter on
127.0.0.1.

The servers are a stable and a candidate of the example classifier, each given predictions
and then labels on ``/feedback`` every second: the stable's labels are its own answers, the
candidate's too for its detectors' first 300 (their warm-up), then the other class. Its
accuracy falls and its error rises, so both ``ModelLivePerformanceDrop`` and
``ModelConceptDrift`` must fire for the candidate's version, and neither for the stable.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from server_process import Server

from modeldeploy.operator.analysis import index_rules
from modeldeploy.server import contract as c
from modeldeploy.server.changepoint import WARMUP
from modeldeploy.server.contract import rulemodel as rm
from modeldeploy.server.contract import rules
from modeldeploy.server.examples import as_records, generate_traffic

CACHED = sorted((Path.home() / ".cache" / "modeldeploy" / "bin").glob("prometheus-v*/prometheus"))
PROMETHEUS = str(CACHED[-1]) if CACHED else shutil.which("prometheus")
RULES_FILE = Path(__file__).resolve().parents[2] / "charts/modeldeploy/rules/modeldeploy-rules.yaml"
DEADLINE_SECONDS = 150
ROWS_PER_TICK = 25  # per server, every second of the watch
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


def _start_prometheus(
    folder: Path, exporter: str, servers: dict[str, Server]
) -> tuple[subprocess.Popen[bytes], str]:
    """A real Prometheus with the chart's rules, scraping every second: the exporter with its
    own labels kept, and the servers with the target labels the chart's scrape
    configuration would give their pods (which win over the server's own ``role``)."""
    models = [
        {
            "targets": [server.url.removeprefix("http://")],
            "labels": {"namespace": NAMESPACE, "modeldeployment": "live", "role": role},
        }
        for role, server in servers.items()
    ]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {
                "job_name": "exporter",
                "honor_labels": True,
                "static_configs": [{"targets": [exporter]}],
            },
            {"job_name": "models", "static_configs": models},
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    with (folder / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}"


class Labeller:
    """Predictions and then labels for both servers, one round per call."""

    def __init__(self, servers: dict[str, Server]) -> None:
        self.servers = servers
        self.rows = as_records(generate_traffic(ROWS_PER_TICK * DEADLINE_SECONDS, seed=91))
        self.sent = 0

    def tick(self) -> None:
        batch = self.rows[self.sent : self.sent + ROWS_PER_TICK]
        for role, server in self.servers.items():
            with server.client() as http:
                answer = http.post("/predict", json={"instances": batch}).json()
                predicted = answer["predictions"]
                wrong = role == "candidate" and self.sent >= WARMUP
                labels = [1 - p for p in predicted] if wrong else predicted
                r = http.post(
                    "/feedback", json={"request_id": answer["request_id"], "labels": labels}
                )
                assert r.status_code == 200, r.text
        self.sent += ROWS_PER_TICK


def _get(url: str, path: str, **params: str) -> Any:
    body = httpx.get(url + path, params=params, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]


WANT = {
    (rules.ALERT_LIVE_PERFORMANCE, "worse", "candidate"),
    (rules.ALERT_LIVE_PERFORMANCE, "house", "candidate"),
    (rules.ALERT_CONCEPT_DRIFT, "house", "stable"),
    (rules.ALERT_LIVE_PERFORMANCE, "live", "candidate"),
    (rules.ALERT_CONCEPT_DRIFT, "live", "candidate"),
}


def _watch(
    url: str, labeller: Labeller
) -> tuple[dict[tuple[str, str, str], dict[str, str]], set[tuple[str, str, str]]]:
    """Label a round a second and poll until every expected alert fires (or the deadline);
    return the firing alerts by (alert, modeldeployment, role) and every such triple seen
    pending or firing."""
    seen: set[tuple[str, str, str]] = set()
    firing: dict[tuple[str, str, str], dict[str, str]] = {}
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        labeller.tick()
        try:
            alerts = _get(url, "/api/v1/alerts")["alerts"]
        except httpx.TransportError:  # still starting
            alerts = []
        for a in alerts:
            labels = a["labels"]
            seen.add((labels["alertname"], labels.get("modeldeployment", ""), labels["role"]))
            if a["state"] == "firing":
                firing[(labels["alertname"], labels["modeldeployment"], labels["role"])] = labels
        if set(firing) >= WANT:
            break
        time.sleep(1)
    return firing, seen


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=10).status_code == 200
    except httpx.TransportError:  # not listening yet
        return False


def _wait_scraped(url: str, proc: subprocess.Popen[bytes], folder: Path) -> None:
    """Until Prometheus holds a first (all-zero) sample of both servers' label counters, so
    the first labels count as an increase."""
    deadline = time.monotonic() + 60
    while True:
        # Prometheus answers 503 until its storage is ready: ask its readiness first
        if _ready(url):
            rows = _get(url, "/api/v1/query", query=c.METRIC_FEEDBACK_ROWS + '{job="models"}')
        else:
            rows = {"result": []}
        if len(rows["result"]) == 2:
            return
        assert proc.poll() is None and time.monotonic() < deadline, (
            folder / "prometheus.log"
        ).read_text()
        time.sleep(0.3)


def test_live_performance_and_concept_drift_alerts(
    serve: Callable[..., Server], bundles: dict[str, Any], exporter: str, tmp_path: Path
) -> None:
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (make setup builds it)")
    servers = {
        "stable": serve(bundles["good"]),
        "candidate": serve(bundles["good2"], "--role", "candidate"),
    }
    # Every answer names the version; Prometheus sees it as the series' ``version``.
    version = {
        role: httpx.get(s.url + c.READY_PATH, timeout=10).headers[c.MODEL_VERSION_HEADER]
        for role, s in servers.items()
    }
    proc, prometheus = _start_prometheus(tmp_path, exporter, servers)
    try:
        _wait_scraped(prometheus, proc, tmp_path)
        started = time.monotonic()
        labeller = Labeller(servers)
        firing, seen = _watch(prometheus, labeller)
        took = time.monotonic() - started
        _judge(prometheus, firing, seen, version)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"alerts fired after {took:.0f} s, {labeller.sent} rows labelled per server")


def _judge(
    prometheus: str,
    firing: dict[tuple[str, str, str], dict[str, str]],
    seen: set[tuple[str, str, str]],
    version: dict[str, str],
) -> None:
    assert set(firing) >= WANT, (sorted(firing), sorted(seen))
    # The real servers: the candidate's version, by accuracy, and its own detector.
    live = firing[(rules.ALERT_LIVE_PERFORMANCE, "live", "candidate")]
    assert live["version"] == version["candidate"] != version["stable"]
    assert live["test"] == "accuracy"
    assert (
        firing[(rules.ALERT_CONCEPT_DRIFT, "live", "candidate")]["version"] == version["candidate"]
    )
    assert (rules.ALERT_CONCEPT_DRIFT, "live", "stable") not in seen

    worse = firing[(rules.ALERT_LIVE_PERFORMANCE, "worse", "candidate")]
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
        assert not {x for x in seen if x[:2] == (rules.ALERT_LIVE_PERFORMANCE, md)}, md
    drifted = {(md, role) for name, md, role in seen if name == rules.ALERT_CONCEPT_DRIFT}
    assert drifted == {("house", "stable"), ("live", "candidate")}

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

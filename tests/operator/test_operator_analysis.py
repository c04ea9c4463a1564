"""The analysis client against a real Prometheus on loopback: batched alerts, loaded
alerting rules and their health, scraped versions, prediction counters, checks, and an
unreachable Prometheus."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import yaml

from modeldeploy.operator import engine
from modeldeploy.operator.analysis import (
    FORGET_AFTER_SECONDS,
    Poller,
    PrometheusClient,
    index_active_since,
    index_alerts,
    index_rules,
)
from modeldeploy.operator.model import Check

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed")
    folder = tmp_path_factory.mktemp("prom")
    port = free_port()
    target = f"127.0.0.1:{port}"
    labels = [
        {"namespace": "ml", "modeldeployment": "iris", "role": r} for r in ("stable", "candidate")
    ]
    (folder / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(folder / "rules.yml")],
                "scrape_configs": [
                    {
                        "job_name": "self",
                        "static_configs": [{"targets": [target], "labels": lab} for lab in labels],
                    }
                ],
            }
        )
    )

    def versioned(expr: str) -> str:
        """``expr`` for the candidate at v2 and the stable at v1 (the server's own label)."""
        return (
            f'label_replace({expr.format(role="candidate")}, "version", "v2", "", "") '
            f'or label_replace({expr.format(role="stable")}, "version", "v1", "", "")'
        )

    iris = {"namespace": "ml", "modeldeployment": "iris"}
    (folder / "rules.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        # What the model server's scrape gives: its info and its counter.
                        "name": "server",
                        "rules": [
                            {
                                "record": "modeldeploy_model_info",
                                "expr": versioned('up{{role="{role}"}}'),
                            },
                            {
                                "record": "modeldeploy_predictions_total",
                                "expr": versioned('up{{role="{role}"}} * 150').replace(
                                    'stable"} * 150', 'stable"} * 900'
                                ),
                            },
                        ],
                    },
                    {
                        "name": "t",
                        "rules": [
                            {
                                "alert": "ModelFeatureDrift",
                                "expr": "vector(0.42)",
                                "labels": {**iris, "role": "candidate", "version": "v2"},
                            },
                            {
                                # A rolled-back candidate's alert, still in its window.
                                "alert": "ModelPredictionDivergence",
                                "expr": "vector(24.8)",
                                "labels": {**iris, "role": "candidate", "version": "v0"},
                            },
                            {
                                "alert": "ModelHighLatency",
                                "expr": "vector(3)",
                                "labels": {
                                    "namespace": "ml",
                                    "modeldeployment": "other",
                                    "role": "stable",
                                },
                            },
                            {
                                # Fails at every evaluation: two `up` series on the right.
                                "alert": "ModelHighErrorRate",
                                "expr": "vector(1) + on () group_left () up",
                            },
                            {"alert": "Unrelated", "expr": "vector(1)"},
                        ],
                    },
                ]
            }
        )
    )
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={target}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{target}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                q = urllib.request.urlopen(
                    f"{url}/api/v1/query?query=count(up%3D%3D1)", timeout=2
                ).read()
                a = urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=2).read()
                r = urllib.request.urlopen(f"{url}/api/v1/rules?type=alert", timeout=2).read()
                info = urllib.request.urlopen(
                    f"{url}/api/v1/query?query=count(modeldeploy_model_info)", timeout=2
                ).read()
                ready = b'"2"' in q and b'"2"' in info
                if ready and a.count(b'"firing"') >= 4 and b'"health":"err"' in r:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("Prometheus did not come up with firing alerts within 60s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _with_client(fn):  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        return await fn(PrometheusClient(session, timeout=5))


def test_one_batched_snapshot_indexes_alerts_rules_versions_and_predictions(
    prometheus: str,
) -> None:
    now = datetime.now(UTC)
    snap = run(_with_client(lambda c: c.snapshot(prometheus, now)))
    assert snap.error == "" and snap.url == prometheus
    assert snap.firing[("ml", "iris")] == {
        ("candidate", "v2"): [("ModelFeatureDrift", 0.42)],
        ("candidate", "v0"): [("ModelPredictionDivergence", 24.8)],
    }
    assert snap.firing[("ml", "other")] == {("stable", ""): [("ModelHighLatency", 3.0)]}
    assert all(key[1] for key in snap.firing), "alerts without the label are ignored"
    # The real Prometheus says when each became active: before this snapshot, after start.
    since = snap.active_since[("ml", "iris")]
    assert set(since) == {
        ("candidate", "v2", "ModelFeatureDrift"),
        ("candidate", "v0", "ModelPredictionDivergence"),
    }
    assert all(now - timedelta(minutes=2) < at <= now for at in since.values()), since
    drift_since = snap.sample("ml", "iris").active_since_of(
        "candidate", "v2", {"ModelFeatureDrift"}
    )
    assert drift_since == since[("candidate", "v2", "ModelFeatureDrift")]
    assert snap.scraped[("ml", "iris")] == {("stable", "v1"), ("candidate", "v2")}
    assert snap.predictions[("ml", "iris")] == {("candidate", "v2"): 150.0, ("stable", "v1"): 900.0}
    assert snap.rules is not None
    assert snap.rules["ModelFeatureDrift"] == "" and snap.rules["Unrelated"] == ""
    assert snap.rules["ModelHighErrorRate"].startswith("rule in group t has health err: ")
    assert "ModelFeatureDrif" not in snap.rules

    sample = snap.sample("ml", "iris")
    outcome, message, _ = engine.judge(sample, ("ModelFeatureDrift",), "candidate", version="v2")
    assert outcome == "Failed" and "0.42" in message and "v2" in message
    # Per version: the old candidate v0's divergence never counts against v2 ...
    divergence = ("ModelPredictionDivergence",)
    assert engine.judge(sample, divergence, "candidate", version="v2")[0] == "Passed"
    # ... but it does against v0 itself.
    assert engine.judge(sample, divergence, "candidate", version="v0")[0] == "Failed"
    assert engine.judge(sample, ("ModelFeatureDrift",), "stable", version="v1")[0] == "Passed"
    # Evidence or no promotion: a misspelt alert, or one whose rule fails, is no pass.
    outcome, message, _ = engine.judge(sample, ("ModelFeatureDrif",), "candidate", version="v2")
    assert outcome == "Inconclusive"
    assert message == f"alert ModelFeatureDrif is not a loaded alerting rule in {prometheus}"
    outcome, message, _ = engine.judge(sample, ("ModelHighErrorRate",), "candidate", version="v2")
    assert outcome == "Inconclusive" and "cannot fire" in message and "health err" in message
    # A version Prometheus does not scrape: no data, no pass.
    assert engine.judge(sample, (), "candidate", version="v9")[0] == "Inconclusive"
    assert engine.judge(snap.sample("ml", "nobody"), (), "candidate")[0] == "Inconclusive"


def test_alerts_poll_refreshes_firing_and_wakes_the_newly_firing(prometheus: str) -> None:
    async def go() -> tuple[list[set[tuple[str, str]]], int]:
        woken: list[set[tuple[str, str]]] = []
        async with aiohttp.ClientSession() as session:
            poller = Poller(
                client=PrometheusClient(session),
                interval=60,
                on_firing=lambda url, keys: woken.append(keys),
            )
            poller.want(prometheus)
            await poller.poll_once()
            first = poller.snapshots[prometheus]
            # Pretend the last full poll saw nothing firing for iris: the fast poll wakes it.
            poller.snapshots[prometheus] = replace(first, firing={})
            await poller.poll_alerts_once()
            again = poller.snapshots[prometheus]
            assert again.at == first.at, "the fast poll does not make a sample due"
            assert again.rules == first.rules and again.firing == first.firing
            await poller.poll_alerts_once()  # nothing new: nobody woken
            return woken, len(again.firing)

    woken, n = run(go())
    assert woken[0] == {("ml", "iris"), ("ml", "other")} and len(woken) == 2 and n == 2


def test_checks(prometheus: str) -> None:
    ok = Check("up", 'sum(up{modeldeployment="{{name}}", role="{{role}}"})', "result == 1", None)
    empty = Check("empty", 'up{modeldeployment="nobody"}', "result == 1", None)
    many = Check("many", "up", "result == 1", None)
    bad = Check("bad", "sum(", "result == 1", None)

    async def go(c: PrometheusClient):  # type: ignore[no-untyped-def]
        return [
            await c.check(prometheus, k, "ml", "iris", "candidate") for k in (ok, empty, many, bad)
        ]

    r_ok, r_empty, r_many, r_bad = run(_with_client(go))
    assert r_ok.value == 1.0 and r_ok.error == ""
    assert r_empty.value is None and r_empty.error == "no data"
    assert r_many.value is None and "2 series" in r_many.error
    assert r_bad.value is None and "400" in r_bad.error


def test_unreachable_prometheus_is_an_error_snapshot() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    snap = run(_with_client(lambda c: c.snapshot(url, datetime.now(UTC))))
    assert snap.error.startswith(url)
    assert engine.judge(snap.sample("ml", "iris"), (), "candidate")[0] == "Inconclusive"


def test_poller_polls_each_url_once_per_round(prometheus: str) -> None:
    async def go() -> tuple[int, int]:
        calls: list[str] = []
        async with aiohttp.ClientSession() as session:
            poller = Poller(
                client=PrometheusClient(session),
                interval=60,
                on_poll=lambda url, snap, s: calls.append(url),
            )
            for _ in range(500):  # 500 ModelDeployments asking for the same Prometheus
                poller.want(prometheus)
            await poller.poll_once()
            return len(calls), len(poller.snapshots)

    assert run(go()) == (1, 1)


def test_a_prometheus_is_forgotten_only_long_after_its_last_reconcile(prometheus: str) -> None:
    """At the 2 s default poll, ten polls (the old window) are shorter than a resync can
    be: a Prometheus asked for 100 s ago is still polled, one asked for long ago is not."""

    async def go() -> tuple[list[str], set[str]]:
        gone = f"http://127.0.0.1:{free_port()}"
        polled: list[str] = []
        async with aiohttp.ClientSession() as session:
            poller = Poller(
                client=PrometheusClient(session),
                interval=2,
                on_poll=lambda url, snap, s: polled.append(url),
            )
            poller.urls[prometheus] = time.monotonic() - 100
            poller.urls[gone] = time.monotonic() - FORGET_AFTER_SECONDS - 1
            await poller.poll_once()
            return polled, set(poller.urls)

    polled, kept = run(go())
    assert polled == [prometheus] and kept == {prometheus}


def test_a_stalled_prometheus_does_not_hold_back_the_others(prometheus: str) -> None:
    """Polls of several Prometheus run at once: a stalled one (it accepts and never answers)
    costs its own ModelDeployments the client's timeout, not everybody else's snapshot."""

    async def go() -> list[tuple[str, float, str]]:
        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)
            writer.close()

        server = await asyncio.start_server(stall, "127.0.0.1", 0)
        stalled = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        done: list[tuple[str, float, str]] = []
        async with server, aiohttp.ClientSession() as session:
            poller = Poller(
                client=PrometheusClient(session, timeout=4.0),
                interval=60,
                on_poll=lambda url, snap, s: done.append((url, s, snap.error)),
            )
            poller.want(stalled)  # first: polled one after the other, it would go first
            poller.want(prometheus)
            await poller.poll_once()
            alerts = asyncio.create_task(poller.poll_alerts_once())
            await asyncio.wait_for(alerts, 10)
        return [(u if u == prometheus else "stalled", s, e) for u, s, e in done]

    (first, fast, fast_error), (second, slow, slow_error) = run(go())
    assert (first, second) == (prometheus, "stalled")
    assert fast_error == "" and "timeout" in slow_error.lower(), slow_error
    assert slow >= 4.0 > fast


def test_index_alerts_skips_pending_and_unlabelled() -> None:
    alerts = [
        {"state": "pending", "labels": {"alertname": "A", "modeldeployment": "m"}},
        {"state": "firing", "labels": {"alertname": "B"}},
        {
            "state": "firing",
            "value": "1e+00",
            "labels": {
                "alertname": "C",
                "modeldeployment": "m",
                "namespace": "n",
                "role": "candidate",
            },
        },
    ]
    assert index_alerts(alerts) == {("n", "m"): {("candidate", ""): [("C", 1.0)]}}


def test_index_alerts_names_the_feature_a_drift_alert_fires_for() -> None:
    labels = {"modeldeployment": "m", "namespace": "n", "role": "candidate", "version": "v3"}
    alerts = [
        {
            "state": "firing",
            "value": "2.5e+00",
            "labels": {**labels, "alertname": "ModelFeatureDrift", "feature": "plan"},
        },
        {"state": "firing", "value": "9", "labels": {**labels, "alertname": "ModelHighLatency"}},
    ]
    assert index_alerts(alerts) == {
        ("n", "m"): {
            ("candidate", "v3"): [
                ('ModelFeatureDrift{feature="plan"}', 2.5),
                ("ModelHighLatency", 9.0),
            ]
        }
    }


def test_index_active_since_keeps_when_each_firing_alert_became_active() -> None:
    labels = {"modeldeployment": "m", "namespace": "n", "role": "stable", "version": "4"}
    alerts = [
        {
            "state": "firing",
            "activeAt": "2026-12-03T07:25:11.123456789Z",  # Prometheus' nanoseconds
            "labels": {**labels, "alertname": "ModelFeatureDrift", "feature": "plan"},
        },
        {
            "state": "firing",
            "activeAt": "2026-12-03T08:25:11+01:00",
            "labels": {**labels, "alertname": "ModelHighLatency"},
        },
        {"state": "firing", "labels": {**labels, "alertname": "NoTime"}},
        {"state": "pending", "activeAt": "2026-12-03T07:00:00Z", "labels": labels},
    ]
    at = datetime(2026, 12, 3, 7, 25, 11, 123456, tzinfo=UTC)
    assert index_active_since(alerts) == {
        ("n", "m"): {
            ("stable", "4", 'ModelFeatureDrift{feature="plan"}'): at,
            ("stable", "4", "ModelHighLatency"): at.replace(microsecond=0),
        }
    }


def test_index_rules_keeps_the_worst_health_of_a_name() -> None:
    groups = [
        {"name": "chart", "rules": [{"type": "alerting", "name": "A", "health": "ok"}]},
        {
            "name": "md",
            "rules": [
                {"type": "alerting", "name": "A", "health": "err", "lastError": "boom"},
                {"type": "alerting", "name": "B", "health": "unknown"},
                {"type": "recording", "name": "r", "health": "ok"},
            ],
        },
    ]
    assert index_rules(groups) == {
        "A": "rule in group md has health err: boom",
        "B": "rule in group md has health unknown (not evaluated yet)",
    }

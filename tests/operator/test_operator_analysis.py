"""The analysis client against a real Prometheus on loopback: batched alerts, scraped roles,
checks, and an unreachable Prometheus."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import aiohttp
import pytest
import yaml

from modeldeploy.operator import engine
from modeldeploy.operator.analysis import Poller, PrometheusClient, index_alerts
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
    (folder / "rules.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "t",
                        "rules": [
                            {
                                "alert": "ModelFeatureDrift",
                                "expr": "vector(0.42)",
                                "labels": {
                                    "namespace": "ml",
                                    "modeldeployment": "iris",
                                    "role": "candidate",
                                },
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
                            {"alert": "Unrelated", "expr": "vector(1)"},
                        ],
                    }
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
                if b'"2"' in q and a.count(b'"firing"') >= 3:
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


def test_one_batched_snapshot_indexes_alerts_and_scraped_roles(prometheus: str) -> None:
    now = datetime.now(UTC)
    snap = run(_with_client(lambda c: c.snapshot(prometheus, now)))
    assert snap.error == ""
    assert snap.firing[("ml", "iris")] == {"candidate": [("ModelFeatureDrift", 0.42)]}
    assert snap.firing[("ml", "other")] == {"stable": [("ModelHighLatency", 3.0)]}
    assert all(key[1] for key in snap.firing), "alerts without the label are ignored"
    assert snap.scraped[("ml", "iris")] == {"stable", "candidate"}
    sample = snap.sample("ml", "iris")
    outcome, message, _ = engine.judge(sample, ("ModelFeatureDrift",), "candidate")
    assert outcome == "Failed" and "0.42" in message
    assert engine.judge(snap.sample("ml", "iris"), ("ModelFeatureDrift",), "stable")[0] == "Passed"
    assert engine.judge(snap.sample("ml", "nobody"), (), "candidate")[0] == "Inconclusive"


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
    assert index_alerts(alerts) == {("n", "m"): {"candidate": [("C", 1.0)]}}

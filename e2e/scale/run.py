"""One measured run: N ModelDeployments on the fake node, all rolled from v1 to v2 at once, a
chosen subset's v2 diverging or drifting; what the operator did and what it cost."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from e2e.cluster import config, probe
from e2e.cluster.api import Cluster
from e2e.scale.env import FLOW_PREFIX, ScaleEnv, model_deployment, wait

V1, V2 = "v1", "v2"
ENDED = ("Promoted", "RolledBack", "Aborted")


def faulty(n: int, every: int = 10) -> dict[str, str]:
    """Every ``every``-th ModelDeployment gets a bad v2, alternately diverging and drifting."""
    bad = [i for i in range(n) if i % every == every // 2]
    return {name(i): ("diverge" if k % 2 == 0 else "drift") for k, i in enumerate(bad)}


def stalled_subset(n: int, every: int = 5) -> frozenset[str]:
    """Which of ``n`` ModelDeployments ask a Prometheus that never answers (``stall``): every
    ``every``-th one, offset so that none of them is one of ``faulty``'s bad ones."""
    return frozenset(name(i) for i in range(n) if i % every == 1)


def name(i: int) -> str:
    return f"m{i:04d}"


class Watcher(threading.Thread):
    """The ModelDeployments of a namespace through one watch: the latest object of each and
    when each v2 rollout was first seen ended (seconds since the epoch)."""

    def __init__(self, env: ScaleEnv) -> None:
        super().__init__(daemon=True)
        self.env, self.stop = env, threading.Event()
        self.latest: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, tuple[str, float]] = {}
        self.lock = threading.Lock()

    def _url(self, rv: str) -> str:
        base = f"{config.APISERVER_URL}/apis/modeldeploy.io/v1alpha1/namespaces"
        q = f"?watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={rv}"
        return f"{base}/{self.env.namespace}/modeldeployments{q}"

    def run(self) -> None:
        ctx = probe.admin_context(self.env.cluster.paths)
        rv = "0"
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self._url(rv), context=ctx, timeout=330) as resp:
                    for line in resp:
                        ev = json.loads(line)
                        obj = ev.get("object") or {}
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if ev.get("type") in ("ADDED", "MODIFIED"):
                            self._seen(obj)
                        if self.stop.is_set():
                            return
            except (OSError, ValueError):
                time.sleep(1)

    def _seen(self, obj: dict[str, Any]) -> None:
        now = time.time()
        key = obj["metadata"]["name"]
        status = obj.get("status") or {}
        top = (status.get("history") or [{}])[0]
        with self.lock:
            self.latest[key] = obj
            if (
                top.get("version") == V2
                and top.get("outcome") in ENDED
                and not status.get("candidateVersion")
                and key not in self.ended
            ):
                self.ended[key] = (str(top["outcome"]), now)

    def count(self, pred: Any) -> int:
        with self.lock:
            return sum(1 for o in self.latest.values() if pred(o))


def _scrape(url: str, ctx: Any = None) -> str:
    code, body = probe.get(url, ctx, timeout=20)
    if code != 200:
        raise RuntimeError(f"GET {url}: {code} {body[:200]}")
    return body


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def series(text: str, metric: str) -> dict[str, float]:
    """{labels text: value} of one metric in an exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and m.group(1) == metric:
            out[m.group(2) or ""] = float(m.group(3))
    return out


def _label(labels: str, key: str) -> str:
    m = re.search(rf'{key}="([^"]*)"', labels)
    return m.group(1) if m else ""


def api_counts(cluster: Cluster) -> dict[str, float]:
    """The operator's requests so far by verb, as the apiserver's FlowSchemas counted them."""
    ctx = probe.admin_context(cluster.paths)
    text = _scrape(f"{config.APISERVER_URL}/metrics", ctx)
    out: dict[str, float] = {}
    for labels, v in series(text, "apiserver_flowcontrol_dispatched_requests_total").items():
        flow = _label(labels, "flow_schema")
        if flow.startswith(FLOW_PREFIX):
            out[flow.removeprefix(FLOW_PREFIX)] = v
    return out


@dataclass
class Counters:
    """Cumulative counters at one instant (deltas of two are a run's cost)."""

    api: dict[str, float]  # verb -> operator's requests dispatched by the apiserver
    prometheus: dict[str, float]  # handler -> requests
    polls: float
    lag_buckets: dict[float, float]
    poll_buckets: dict[float, float]  # how long each batched poll of Prometheus took
    cpu: float

    @classmethod
    def now(cls, env: ScaleEnv) -> Counters:
        api = api_counts(env.cluster)
        op = env.operator.metrics()
        # The operator's own count: Prometheus's would include every other client of it.
        prom: dict[str, float] = {}
        for labels, v in series(op, "modeldeploy_operator_prometheus_requests_total").items():
            h = _label(labels, "path")
            prom[h] = prom.get(h, 0.0) + v
        polls = sum(series(op, "modeldeploy_operator_analysis_polls_total").values())
        lag, poll = (
            buckets(op, f"modeldeploy_operator_analysis_{m}_seconds_bucket")
            for m in ("tick_lag", "poll")
        )
        return cls(api, prom, polls, lag, poll, env.operator.usage()[1])


def buckets(text: str, metric: str) -> dict[float, float]:
    """A histogram's cumulative buckets by upper bound, from an exposition."""
    return {
        float(_label(k, "le").replace("+Inf", "inf")): v for k, v in series(text, metric).items()
    }


def delta_quantiles(
    before: dict[float, float], after: dict[float, float]
) -> tuple[float, float, int]:
    """p50, p99 and count of what a histogram observed between two readings."""
    d = {le: v - before.get(le, 0.0) for le, v in after.items()}
    return quantile(0.5, d), quantile(0.99, d), int(d.get(float("inf"), 0))


def quantile(q: float, buckets: dict[float, float]) -> float:
    """histogram_quantile over cumulative buckets (linear inside a bucket)."""
    items = sorted(buckets.items())
    total = items[-1][1] if items else 0.0
    if total <= 0:
        return float("nan")
    rank, lo, lo_count = q * total, 0.0, 0.0
    for le, count in items:
        if count >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * (rank - lo_count) / max(count - lo_count, 1e-9)
        lo, lo_count = le, count
    return lo


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


@dataclass
class Result:
    n: int
    healthy_done_s: float = float("nan")
    apply_s: float = float("nan")
    tick_p50: float = float("nan")
    tick_p99: float = float("nan")
    poll_p50: float = float("nan")  # a batched poll's duration (its snapshot's wait)
    poll_p99: float = float("nan")
    ticks: int = 0
    rollback_p50: float = float("nan")
    rollback_p99: float = float("nan")
    rss_peak: float = 0.0
    rss_end: float = 0.0
    cpu_s: float = 0.0
    api: dict[str, float] = field(default_factory=dict)
    api_lifetime: dict[str, float] = field(default_factory=dict)
    prometheus: dict[str, float] = field(default_factory=dict)
    polls: float = 0.0
    seconds: float = 0.0  # the measured window
    wrong: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    stalled: int = 0  # how many asked the Prometheus that never answers


def _delta(a: dict[Any, float], b: dict[Any, float]) -> dict[Any, float]:
    return {k: b[k] - a.get(k, 0.0) for k in b if b[k] - a.get(k, 0.0) > 0}


def first_firing(env: ScaleEnv, start: float, end: float) -> dict[str, float]:
    """When Prometheus first had each candidate's alert firing (1 s resolution)."""
    data = env.cluster.prometheus_api(
        "query_range",
        query=f'ALERTS{{alertstate="firing",namespace="{env.namespace}",role="candidate"}}',
        start=f"{start:.0f}",
        end=f"{end + 1:.0f}",
        step="1",
    )
    out: dict[str, float] = {}
    for s in data["result"]:
        md = s["metric"].get("modeldeployment", "")
        t = float(s["values"][0][0])
        out[md] = min(out.get(md, t), t)
    return out


def apply_all(env: ScaleEnv, objs: list[dict[str, Any]], parallel: int = 4) -> None:
    """Server-side apply in a few concurrent kubectl processes (one request per object), so
    that N rollouts start within seconds of each other."""
    from concurrent.futures import ThreadPoolExecutor

    def one(chunk: list[dict[str, Any]]) -> None:
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": chunk})
        env.cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=doc, timeout=600
        )

    chunks = [objs[i::parallel] for i in range(parallel)]
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, [c for c in chunks if c]))


def measure(
    env: ScaleEnv,
    n: int,
    analysis: str = "60s",
    log: Any = print,
    elsewhere: tuple[frozenset[str], str] = (frozenset(), ""),
) -> Result:
    """``elsewhere``: ModelDeployments whose analysis asks another Prometheus (its URL), one
    that never answers: they must never promote (rolled back as inconclusive) and the
    others must end as injected, as if it were not there."""
    bad = faulty(n)
    env.set_faults(bad)
    names = [name(i) for i in range(n)]
    stalled, stalled_url = elsewhere

    def manifest(x: str, version: str) -> dict[str, Any]:
        url = stalled_url if x in stalled else ""
        return model_deployment(x, env.namespace, version, analysis, url)

    watcher = Watcher(env)
    watcher.start()
    res = Result(n, stalled=len(stalled))
    try:
        t = time.monotonic()
        apply_all(env, [manifest(x, V1) for x in names])

        def stable_v1(o: dict[str, Any]) -> bool:
            s = o.get("status") or {}
            return s.get("phase") == "Healthy" and s.get("stableVersion") == V1

        wait(
            f"{n} ModelDeployments Healthy at v1",
            lambda: watcher.count(stable_v1) == n,
            120 + 1.0 * n,
        )
        log(f"N={n}: {n} at v1 Healthy in {time.monotonic() - t:.0f}s; rolling all to v2")
        before = Counters.now(env)
        start = time.time()
        apply_all(env, [manifest(x, V2) for x in names])
        res.apply_s = time.time() - start
        deadline = time.monotonic() + 300 + 1.2 * n
        while len(watcher.ended) < n and time.monotonic() < deadline:
            res.rss_peak = max(res.rss_peak, env.operator.usage()[0])
            time.sleep(2)
        end = time.time()
        after = Counters.now(env)
        res.rss_end, res.cpu_s = env.operator.usage()[0], after.cpu - before.cpu
        res.rss_peak = max(res.rss_peak, res.rss_end)
        res.api, res.prometheus = (
            _delta(before.api, after.api),
            _delta(before.prometheus, after.prometheus),
        )
        res.api_lifetime = _delta(env.api_start, after.api)
        res.polls = after.polls - before.polls
        res.seconds = end - start
        res.tick_p50, res.tick_p99, res.ticks = delta_quantiles(
            before.lag_buckets, after.lag_buckets
        )
        res.poll_p50, res.poll_p99, _ = delta_quantiles(before.poll_buckets, after.poll_buckets)
        ended = dict(watcher.ended)
        good = [x for x in names if x not in bad and x not in stalled]
        healthy = [ended[x][1] for x in good if x in ended]
        if healthy and len(healthy) == len(good):
            res.healthy_done_s = max(healthy) - start
        for x in names:
            outcome = ended.get(x, ("Unfinished", 0.0))[0]
            res.outcomes[outcome] = res.outcomes.get(outcome, 0) + 1
            if outcome != ("RolledBack" if x in bad or x in stalled else "Promoted"):
                why = "no answer from its Prometheus" if x in stalled else bad.get(x, "healthy")
                res.wrong.append(f"{x}: {outcome} ({why})")
        fired = first_firing(env, start, end)
        delays = [
            ended[x][1] - fired[x] for x in bad if x in ended and x in fired and x not in stalled
        ]
        res.rollback_p50, res.rollback_p99 = pct(delays, 0.5), pct(delays, 0.99)
        return res
    finally:
        watcher.stop.set()

"""Time from a rule's condition becoming true to the candidate's weight reaching zero.

`python -m e2e.bench_rollback [--runs N] [--interval 30s]` on the running local cluster (it
is not brought up or down here): the chart installed into its own namespace, the fast chart
rules (group interval 2 s, ``for: 6s``), the ModelDeployment's ``analysis.interval`` (default
30 s, the CRD's and the chart's default; ``--interval 2s`` gives the earlier figures), v2
(good) stable under steady traffic, and N canaries of v3 (diverging). For each rollback it
prints the parts:

- condition true: the rule evaluation that first saw ModelPredictionDivergence's expression
  true (Prometheus' ``activeAt``);
- ``for``: the alert fires at the first evaluation at least ``for`` later;
- operator: from firing to the status showing weight 0 (the operator's one-second alerts
  poll, whatever the analysis interval, the reconcile, the server-side apply of the
  Deployments and Services, the status write);
- Service: from weight 0 in the status to the candidate's pods leaving the Service's
  endpoints (the kube-controller-manager and kube-proxy, what clients actually see).

Goals: firing to weight 0 within 2 s at any analysis interval; condition to weight 0 within
``for`` + one rule evaluation + 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import dataclass

from e2e import stack as st
from e2e.cluster.api import Cluster
from e2e.cluster.config import Paths
from e2e.fileserver import serve_bundles
from e2e.observer import _ts
from e2e.stack import Stack
from e2e.traffic import Traffic

NAME = "bench"
POLL = 0.2


@dataclass
class Run:
    active_at: float  # condition true (Prometheus evaluation)
    fired_at: float  # first poll that saw the alert firing
    zero_at: float  # first poll of the status with the candidate gone and weight 0
    endpoints_at: float  # first poll of the Service without candidate endpoints

    @property
    def total(self) -> float:
        return self.zero_at - self.active_at


def _alert(s: Stack) -> dict | None:
    for a in s.cluster.prometheus_api("alerts")["alerts"]:
        lab = a["labels"]
        if (
            lab.get("alertname"),
            lab.get("namespace"),
            lab.get("modeldeployment"),
            lab.get("role"),
            lab.get("version", "v3"),
        ) == ("ModelPredictionDivergence", s.namespace, NAME, "candidate", "v3"):
            return dict(a)
    return None


def _candidate_endpoints(s: Stack, slot: str) -> int:
    slices = s.cluster.kubectl_json(
        "get", "endpointslices", "-n", s.namespace, "-l", f"kubernetes.io/service-name={NAME}"
    )["items"]
    pods = [
        ep.get("targetRef", {}).get("name", "")
        for sl in slices
        for ep in sl.get("endpoints") or []
        if (ep.get("conditions") or {}).get("ready")
    ]
    return sum(1 for p in pods if f"-{slot}-" in p)


def one_run(s: Stack, bundles: dict, strategy: dict, analysis: dict) -> Run:
    # Each run rolls out the same v3 again: its own alert of the previous run (same version)
    # would count against it, so that one is waited out. A different version never waits.
    st.wait("no v3 alert left", lambda: _alert(s) is None, 120, interval=2)
    s.cluster.apply(
        st.model_deployment(NAME, s.namespace, bundles["v3"], strategy, analysis=analysis)
    )
    slot = st.wait("candidate slot", lambda: st.status(s, NAME).get("candidateSlot"), 60)
    active = fired = zero = endpoints = 0.0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not endpoints:
        now = time.time()
        if not fired:
            a = _alert(s)
            if a is not None:
                active = _ts(a["activeAt"]) or now
                if a["state"] == "firing":
                    fired = now
        if fired and not zero:
            status = st.status(s, NAME)
            if not status.get("candidateVersion") and int(status.get("canaryWeight") or 0) == 0:
                zero = time.time()
        if zero and _candidate_endpoints(s, slot) == 0:
            endpoints = time.time()
        time.sleep(POLL)
    if not endpoints:
        raise RuntimeError(f"run did not finish: {st.describe(s, NAME)}")
    hist = st.status(s, NAME)["history"][0]
    assert "ModelPredictionDivergence" in hist["message"], hist
    s.cluster.apply(
        st.model_deployment(NAME, s.namespace, bundles["v2"], strategy, analysis=analysis)
    )
    st.wait_phase(s, NAME, "Healthy", version="v2", timeout=240)
    return Run(active, fired, zero, endpoints)


def report(runs: list[Run], interval: float, for_: float) -> None:
    def row(label: str, xs: list[float]) -> None:
        print(f"  {label:<42} median {statistics.median(xs):5.1f} s   max {max(xs):5.1f} s")

    print(
        f"\n{len(runs)} rollbacks (analysis interval {interval:g} s, rule for {for_:g} s, "
        f"evaluation every {st.GROUP_INTERVAL}, scrape every 2 s)"
    )
    row("condition true -> weight 0 (total)", [r.total for r in runs])
    row("  condition true -> alert firing (for + eval)", [r.fired_at - r.active_at for r in runs])
    row("  firing -> weight 0 in status (operator)", [r.zero_at - r.fired_at for r in runs])
    row("weight 0 -> candidate out of the Service", [r.endpoints_at - r.zero_at for r in runs])
    goal = for_ + 2 + 2  # for, one rule evaluation (2 s), the operator's 2 s
    print(
        f"  goal: firing -> weight 0 <= 2 s, met in "
        f"{sum(r.zero_at - r.fired_at <= 2 for r in runs)}/{len(runs)} runs; "
        f"total <= for + evaluation + 2 s = {goal:g} s, met in "
        f"{sum(r.total <= goal for r in runs)}/{len(runs)} runs"
    )
    print(f"  (polls every {POLL:g} s; alert firing is seen by polling Prometheus' API)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.bench_rollback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--interval", default="30s", help="the ModelDeployment's analysis.interval (30s)"
    )
    parser.add_argument(
        "--fast-operator",
        dest="chart_defaults",
        action="store_false",
        help="run the operator with 1 s polls and resyncs (the earlier figures) instead of "
        "the chart's defaults",
    )
    args = parser.parse_args(argv)
    cluster = Cluster.from_paths(Paths.default())
    ns = f"md-bench-{uuid.uuid4().hex[:5]}"
    # The operator at the chart's defaults (a 10 s Prometheus poll, a 5 s resync, the 1 s
    # alerts poll): its reaction must not depend on fast polls.
    s = st.install(
        cluster,
        ns,
        operator_args=()
        if args.chart_defaults
        else ("--resync-seconds", "1", "--analysis-interval", "1"),
    )
    traffic: Traffic | None = None
    try:
        st.load_rules(cluster, ns)
        bundles = serve_bundles(cluster, ns, {"v2": "good", "v3": "diverging"})
        strategy = st.canary(50, analysis="60s")
        analysis = {"interval": args.interval}
        cluster.apply(st.model_deployment(NAME, ns, bundles["v2"], strategy, analysis=analysis))
        st.wait_phase(s, NAME, "Healthy", version="v2", timeout=240)
        traffic = Traffic(st.answering_ip(s, NAME), rate=25, max_seconds=1800).start()
        time.sleep(10)
        runs = []
        for i in range(args.runs):
            run = one_run(s, bundles, strategy, analysis)
            runs.append(run)
            print(
                f"run {i + 1}: condition->firing {run.fired_at - run.active_at:.1f} s, "
                f"firing->weight 0 {run.zero_at - run.fired_at:.1f} s, total "
                f"{run.total:.1f} s, endpoints +{run.endpoints_at - run.zero_at:.1f} s",
                flush=True,
            )
        report(runs, float(args.interval.rstrip("s")), float(st.ALERT_FOR.rstrip("s")))
        tally = traffic.stop()
        print(f"  traffic: {tally.sent} sent, {tally.lost} lost")
        return 0
    finally:
        if traffic is not None:
            traffic.stop()
        st.uninstall(s)
        st.unload_rules(cluster, ns)


if __name__ == "__main__":
    sys.exit(main())

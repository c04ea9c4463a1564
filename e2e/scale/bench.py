"""`make bench-operator N=500`: one operator replica against N ModelDeployments at once.

For N = 100, 250 and the chosen N (each in a fresh namespace, with a fresh operator), all N
are rolled from v1 to v2 together while every 10th v2 diverges or drifts (in the synthetic
exporter); the project's rules evaluate them in the cluster's Prometheus. Printed per N: the
time until every healthy rollout was promoted, the analysis tick lag (the operator's own
histogram), alert-to-rollback (Prometheus' first firing sample to the rollback seen through a
watch), the operator's RSS and CPU seconds (/proc), its requests by verb as the apiserver
counted them (FlowSchemas of its own identity), Prometheus' requests by handler, and how many
outcomes differ from what was injected. The last line is the summary for the chosen N.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from e2e.cluster.api import Cluster
from e2e.cluster.config import Paths
from e2e.cluster.lifecycle import status, up
from e2e.cluster.sh import locked
from e2e.scale.env import scale_env
from e2e.scale.run import Result, measure, stalled_subset
from e2e.scale.stall import stalled_prometheus


def report(r: Result) -> None:
    api = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.api.items())) or "none"
    prom = ", ".join(
        f"{k} {v:.0f}" for k, v in sorted(r.prometheus.items()) if k.startswith("/api/")
    )
    per_poll = sum(v for k, v in r.prometheus.items() if k.startswith("/api/")) / max(r.polls, 1)
    print(f"--- N={r.n}", flush=True)
    print(
        f"  healthy rollouts all promoted after   {r.healthy_done_s:.1f} s"
        f" (v2 applied to all N in {r.apply_s:.1f} s)"
    )
    print(
        f"  analysis tick lag p50 / p99           {r.tick_p50:.2f} s / {r.tick_p99:.2f} s"
        f" ({r.ticks} ticks)"
    )
    every = " (the one that never answers included)" if r.stalled else ""
    print(f"  batched poll duration p50 / p99       {r.poll_p50:.2f} s / {r.poll_p99:.2f} s{every}")
    print(
        f"  alert firing -> rollback p50 / p99    {r.rollback_p50:.1f} s / {r.rollback_p99:.1f} s"
    )
    print(f"  operator RSS peak / end               {r.rss_peak:.0f} MiB / {r.rss_end:.0f} MiB")
    print(f"  operator CPU during the rollouts      {r.cpu_s:.1f} s")
    life = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.api_lifetime.items())) or "none"
    print(f"  apiserver requests by the operator    {api}")
    print(f"    (its whole life, start-up included: {life})")
    print(
        f"  Prometheus API requests               {prom} ({r.polls:.0f} polls, "
        f"{per_poll:.1f} per poll)"
    )
    if r.stalled:
        print(f"  asking a Prometheus that never answers {r.stalled} (each must be rolled back)")
    print(
        f"  outcomes                              {r.outcomes}; wrong {len(r.wrong)}"
        + (f": {r.wrong[:10]}" if r.wrong else ""),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m e2e.scale.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--n", type=int, default=500, help="the chosen N (default 500)")
    p.add_argument("--only", action="store_true", help="run the chosen N only")
    p.add_argument("--analysis", default="60s", help="canary analysis step (default 60s)")
    p.add_argument(
        "--stalled",
        action="store_true",
        help="a fifth of the ModelDeployments ask a Prometheus that never answers: none of"
        " them may promote, and the others must end as injected, as fast as without it",
    )
    args = p.parse_args(argv)
    paths = Paths.default()
    with locked(paths.lock):  # reuse a healthy cluster, or bring one up (and keep it)
        if not status(paths).healthy:
            up(paths)
    cluster = Cluster.from_paths(paths)
    sizes = [args.n] if args.only else sorted({100, 250, args.n})
    last: Result | None = None
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="md-scale-") as tmp, ExitStack() as stack:
            elsewhere: tuple[frozenset[str], str] = (frozenset(), "")
            if args.stalled:
                elsewhere = (stalled_subset(n), stack.enter_context(stalled_prometheus()))
            with scale_env(cluster, Path(tmp), label=f"scale{n}") as env:
                r = measure(env, n, args.analysis, elsewhere=elsewhere)
            report(r)
        if n == args.n:
            last = r
    assert last is not None
    print(
        f"operator-scale: N={last.n} tick_lag_p99={last.tick_p99:.2f}s "
        f"rollback_p99={last.rollback_p99:.1f}s rss={last.rss_peak:.0f}MiB wrong={len(last.wrong)}"
    )
    return 0 if not last.wrong else 1


if __name__ == "__main__":
    sys.exit(main())

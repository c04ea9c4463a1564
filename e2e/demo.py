"""`python -m e2e.demo` (`make demo`): modeldeploy's whole loop on the local cluster.

Brings the cluster up (or reuses a running one), installs the chart with helm, loads the
chart's rules into the cluster's Prometheus, serves four example bundles from a pod, deploys
v1 and drives steady traffic; then a good v2 is promoted step by step, a diverging v3 is rolled
back by ModelPredictionDivergence, a drifted v4 rolled out blue/green is stopped by
ModelFeatureDrift in its pre-promotion analysis, and shifted inputs make the stable model's
drift show on the ModelDeployment. A live view prints as it goes; at the end a summary and a
PNG plot (docs/demo.png). Everything it started is removed; the cluster stays only if it was
already running.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from e2e import stack as st
from e2e.cluster.api import Cluster
from e2e.cluster.config import Paths
from e2e.fileserver import serve_bundles
from e2e.observer import Observer, Sample
from e2e.stack import ALERT_FOR, Stack
from e2e.traffic import Traffic

NAME = "incident"
BUNDLES = {"v1": "good", "v2": "good", "v3": "diverging", "v4": "drifted"}
PLOT = st.ROOT / "docs" / "demo.png"


@dataclass
class Outcome:
    version: str
    strategy: str
    outcome: str
    rule: str = ""
    value: float = math.nan
    seconds_to_zero: float | None = None
    seconds: float = 0.0


def say(text: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {text}", flush=True)


def live_line(obs: Observer, traffic: Traffic) -> str:
    s: Sample | None = obs.samples[-1] if obs.samples else None
    if s is None:
        return ""
    v = s.values
    recent = traffic.recent_versions(5)
    total = sum(recent.values()) or 1
    split = " ".join(f"{k}:{100 * n / total:.0f}%" for k, n in sorted(recent.items()))
    fmt = lambda x: "  -  " if math.isnan(x) else f"{x:5.2f}"  # noqa: E731
    tally = traffic.snapshot()
    return (
        f"  {tally.sent:>6} sent {tally.lost} lost {s.phase:<11} stable={s.stable:<3} "
        f"cand={s.candidate or '-':<3} "
        f"weight={s.weight:>3}% | answers {split:<16} | mean s/c {fmt(v['mean_stable'])}/"
        f"{fmt(v['mean_candidate'])} z {fmt(v['zscore'])} psi s/c {fmt(v['psi_stable'])}/"
        f"{fmt(v['psi_candidate'])}"
    )


_printed: dict[int, int] = {}


def print_events(obs: Observer) -> None:
    """Print the Events the observer recorded since the last call (none twice, none missed)."""
    shown = _printed.get(id(obs), 0)
    for e in obs.events[shown:]:
        print(f"    event {e['type']:<7} {e['reason']}: {e['message'][:150]}", flush=True)
    _printed[id(obs)] = len(obs.events)


def follow(obs: Observer, traffic: Traffic, until: object, timeout: float, what: str) -> dict:
    """Print the live view every 2 s and new events as they come, until ``until()``."""
    deadline = time.monotonic() + timeout
    last_print = 0.0
    while time.monotonic() < deadline:
        print_events(obs)
        if time.monotonic() - last_print >= 2:
            print(live_line(obs, traffic), flush=True)
            last_print = time.monotonic()
        done = until()  # type: ignore[operator]
        if done:
            return done  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not reached in {timeout:g}s\n{st.describe(obs.stack, NAME)}")


def patch_model(s: Stack, version: str, bundles: dict, strategy: dict, **kw: object) -> None:
    b = bundles[version]
    s.cluster.apply(st.model_deployment(NAME, s.namespace, b, strategy, **kw))  # type: ignore[arg-type]


def rollout_outcome(
    s: Stack, obs: Observer, version: str, strategy: str, started: float
) -> Outcome:
    hist = next(
        (
            h
            for h in st.status(s, NAME).get("history") or []
            if h.get("version") == version and st.parse_ts(h.get("finishedAt")) >= started - 1
        ),
        {},
    )
    out = Outcome(version, strategy, hist.get("outcome", "?"), seconds=time.time() - started)
    for rule, role in (
        ("ModelPredictionDivergence", "candidate"),
        ("ModelFeatureDrift", "candidate"),
    ):
        alert = obs.first_alert(rule, role, started, version)
        if alert is not None and rule in hist.get("message", ""):
            out.rule, out.value = rule, alert.value
            fired = alert.active_at + st_seconds(ALERT_FOR)
            zero = obs.zero_weight_after(alert.active_at, version)
            out.seconds_to_zero = None if zero is None else max(0.0, zero - fired)
    return out


def finished(s: Stack, version: str) -> dict | None:
    """The history entry of ``version``'s rollout once it ended (promoted or rolled back)."""
    status = st.status(s, NAME)
    top = (status.get("history") or [{}])[0]
    if top.get("version") == version and not status.get("candidateVersion"):
        return dict(top)
    return None


def st_seconds(text: str) -> float:
    return float(text.rstrip("s"))


def run_demo(cluster: Cluster, plot: Path) -> list[Outcome]:
    ns = f"md-demo-{uuid.uuid4().hex[:5]}"
    t0 = time.time()
    say(f"installing the chart into namespace {ns} (operator image {cluster.operator_image})")
    s = st.install(cluster, ns)
    traffic: Traffic | None = None
    preview: Traffic | None = None
    obs: Observer | None = None
    try:
        st.load_rules(cluster, ns)
        say(
            f"chart rules loaded into Prometheus (group interval {st.GROUP_INTERVAL}, "
            f"for {st.ALERT_FOR})"
        )
        bundles = serve_bundles(cluster, ns, BUNDLES)
        say(
            "bundles served from a pod in the cluster: "
            + ", ".join(f"{v} ({BUNDLES[v]}, sha256 {b.sha256[:12]})" for v, b in bundles.items())
        )
        canary = st.canary(25, 50, 75, analysis="8s")
        patch_model(s, "v1", bundles, canary)
        st.wait_phase(s, NAME, "Healthy", version="v1", timeout=240)
        traffic = Traffic(st.answering_ip(s, NAME), rate=25, batch=4, max_seconds=1200).start()
        obs = Observer(s, NAME).start()
        say("v1 serves; steady traffic: 25 requests/s of 4 rows to the Service")
        time.sleep(8)
        stages: list[tuple[str, str, float]] = []

        say("1. canary of v2 (good): 25% -> 50% -> 75% -> 100%, analysis at each step")
        t = time.time()
        obs.mark("v2 canary")
        patch_model(s, "v2", bundles, canary)
        follow(obs, traffic, lambda: finished(s, "v2"), 300, "v2 rollout finished")
        stages.append(("v2", "canary", t))
        time.sleep(5)

        say("2. canary of v3 (diverging): ModelPredictionDivergence should roll it back")
        t = time.time()
        obs.mark("v3 canary")
        patch_model(s, "v3", bundles, canary)
        follow(obs, traffic, lambda: finished(s, "v3"), 240, "v3 rollout finished")
        stages.append(("v3", "canary", t))

        say(
            "3. blue/green of v4 (drifted): preview gets live traffic; ModelFeatureDrift "
            "should stop the switch"
        )
        # No waiting for v3's alerts to clear: they carry version="v3" and never count
        # against v4.
        t = time.time()
        obs.mark("v4 blue/green")
        # v4's predictions also differ from v2's; it watches drift (and errors) only, so the
        # demo shows the drift alert alone stopping the switch.
        patch_model(
            s,
            "v4",
            bundles,
            st.blue_green(pre="40s", auto_seconds=2),
            analysis={"alerts": ["ModelFeatureDrift", "ModelHighErrorRate"]},
        )
        st.wait(f"{NAME}-preview Service", lambda: _exists(s, f"{NAME}-preview"), 60)
        preview = Traffic(
            st.service_ip(s, f"{NAME}-preview"), rate=10, batch=4, max_seconds=300, seed=7
        ).start()
        follow(obs, traffic, lambda: finished(s, "v4"), 240, "v4 rollout finished")
        preview.stop()
        stages.append(("v4", "blueGreen", t))

        say(
            "4. back to v2 in the spec; then the live inputs shift: the stable's drift "
            "shows on the ModelDeployment"
        )
        patch_model(s, "v2", bundles, canary)
        st.wait_phase(s, NAME, "Healthy", version="v2", timeout=60)
        t = time.time()
        obs.mark("inputs shift")
        traffic.shift(True)
        cond = follow(obs, traffic, lambda: _drift_condition(s), 180, "InputDrift condition")
        drift = Outcome(
            "v2", "stable", "InputDrift", rule="ModelFeatureDrift", seconds=time.time() - t
        )
        say(f"condition InputDrift={cond['status']}: {cond['message']}")
        time.sleep(3)
        obs.stop()
        print_events(obs)
        alert = obs.first_alert("ModelFeatureDrift", "stable", t)
        drift.value = alert.value if alert else math.nan
        outcomes = [rollout_outcome(s, obs, *stage) for stage in stages] + [drift]
        tally = traffic.stop()
        say(
            f"traffic: {tally.sent} requests sent, {tally.answered} answered "
            f"({dict(tally.by_version)}), {tally.lost} lost, {tally.retried} needed a retry"
        )
        write_plot(obs, traffic, plot, t0)
        print_summary(outcomes, time.time() - t0, tally.as_dict())
        return outcomes
    finally:
        for proc in (obs, preview, traffic):
            if proc is not None:
                proc.stop()
        say(f"removing namespace {ns} and the demo's rules")
        st.uninstall(s)
        st.unload_rules(cluster, ns)


def _exists(s: Stack, service: str) -> bool:
    return (
        s.cluster.kubectl("get", "service", service, "-n", s.namespace, check=False).returncode == 0
    )


def _drift_condition(s: Stack) -> dict | None:
    for c in st.status(s, NAME).get("conditions") or []:
        if c.get("type") == "InputDrift" and c.get("status") == "True":
            return dict(c)
    return None


def print_summary(outcomes: list[Outcome], seconds: float, tally: dict) -> None:
    print("\nSummary")
    print(
        f"  {'rollout':<8} {'strategy':<10} {'outcome':<11} {'rule fired (value)':<40} "
        f"{'fired -> weight 0':>17}"
    )
    for o in outcomes:
        rule = f"{o.rule} ({o.value:.2f})" if o.rule else "none"
        zero = f"{o.seconds_to_zero:.1f} s" if o.seconds_to_zero is not None else "-"
        print(f"  {o.version:<8} {o.strategy:<10} {o.outcome:<11} {rule:<40} {zero:>17}")
    print(
        f"  requests: {tally['sent']} sent, {tally['answered']} answered, {tally['lost']} lost;"
        f" by version {tally['by_version']}"
    )
    print(f"  demo took {seconds:.0f} s\n", flush=True)


def write_plot(obs: Observer, traffic: Traffic, path: Path, t0: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = obs.samples[0].t if obs.samples else t0
    xs = [s.t - start for s in obs.samples]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
    ax1.step(xs, [s.weight for s in obs.samples], where="post", label="candidate weight (spec)")
    secs = sorted(traffic.seconds.items())
    versions = sorted({v for _, sec in secs for v in sec.answers})
    for v in versions:
        pts = [
            (t - start, 100 * sec.answers[v] / max(1, sum(sec.answers.values())))
            for t, sec in secs
            if t >= start
        ]
        ax1.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            ".",
            ms=2,
            alpha=0.5,
            label=f"answered by {v} (%/s)",
        )
    ax1.set_ylabel("traffic %")
    ax1.legend(loc="upper right", fontsize=7, ncol=3)
    for key, label in (("mean_stable", "stable"), ("mean_candidate", "candidate")):
        ax2.plot(xs, [s.values[key] for s in obs.samples], label=f"{label} (Prometheus, 1m)")
    ax2.set_ylabel("mean prediction")
    ax2.legend(loc="upper right", fontsize=7)
    ax3.plot(xs, [abs(s.values["zscore"]) for s in obs.samples], label="|divergence z|")
    ax3.plot(xs, [s.values["psi_stable"] for s in obs.samples], label="PSI max stable")
    ax3.plot(xs, [s.values["psi_candidate"] for s in obs.samples], label="PSI max candidate")
    ax3.axhline(2, ls=":", c="grey")
    ax3.axhline(0.25, ls=":", c="grey")
    ax3.set_yscale("symlog", linthresh=0.1)
    ax3.set_ylim(bottom=0)
    ax3.set_ylabel("rule values")
    ax3.set_xlabel("seconds")
    ax3.legend(loc="upper right", fontsize=7)
    for ax in (ax1, ax2, ax3):
        for t, label in obs.marks:
            ax.axvline(t - start, c="k", lw=0.6, alpha=0.5)
            if ax is ax1:
                ax.text(t - start + 1, 103, label, fontsize=7)
    fig.suptitle(
        "modeldeploy demo: v2 promoted, v3 rolled back (divergence), "
        "v4 stopped (drift), stable drift"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    say(f"plot written to {path}")


def on_cluster(run: Callable[[Cluster], object]) -> None:
    """Build what is missing, reuse the running local cluster or start one, ``run`` on it,
    and stop the cluster again only if this started it (``make demo``, ``make demo-loop``)."""
    from e2e.cluster.build import build_all
    from e2e.cluster.images import current_image_set
    from e2e.cluster.lifecycle import down, ensure_images, status, up
    from e2e.cluster.sh import locked

    paths = Paths.default()
    with locked(paths.lock):
        was_up = status(paths).healthy
        say("building what is missing (cached after the first run)")
        build_all(paths)
        if was_up:
            say("reusing the running local cluster")
            ensure_images(paths, current_image_set(paths))
        else:
            say("starting the local cluster")
            up(paths)
    try:
        run(Cluster.from_paths(paths))
    finally:
        if not was_up:
            with locked(paths.lock):
                say("stopping the cluster the demo started")
                down(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__)
    parser.add_argument("--plot", type=Path, default=PLOT, help="where to write the PNG")
    args = parser.parse_args(argv)
    # SIGTERM (and SIGINT) end the demo through its clean-up: no process or object is left.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    started = time.time()
    on_cluster(lambda cluster: run_demo(cluster, args.plot))
    say(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

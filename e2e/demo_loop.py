"""`python -m e2e.demo_loop` (`make demo-loop`): the retraining loop with no human in it.

On the local cluster (started if it is not running, and stopped again then), with a real
MLflow registry and S3 server: version 1 of the example incident predictor is registered
under ``models:/incident@champion`` and deployed with ``spec.retrain``; traffic flows and a
labeller reports each prediction's outcome through ``/feedback``, which the model servers
write to the labelled-data store. Then the services get busier and slower (input drift) and
what makes an incident changes. The stable's ModelFeatureDrift fires, the operator starts
the example trainer as a Job on the recent labels, the gate Job compares its version 2 with
version 1 on the held-out requests, the alias moves, and the canary promotes version 2. Each
decision is printed as the operator posts it, with its reason.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from e2e import loop
from e2e import stack as st
from e2e.cluster.api import Cluster
from e2e.demo import on_cluster, say
from e2e.labeller import Labeller, changed_truth, example_truth
from e2e.mlflowstore import PORT, mlflow_registry
from e2e.traffic import Traffic

NAME = "incident"
TIMEOUT = 1200  # drift, training, the gate and a canary, on a busy two-core machine


def narrate(stack: st.Stack, traffic: Traffic, labeller: Labeller, seen: set[str]) -> None:
    """Print the Events not printed yet, then one line of where things stand."""
    for e in st.events(stack, NAME):
        key = f"{e.get('reason')}|{e.get('message')}|{e.get('count', 1)}"
        if key not in seen:
            seen.add(key)
            print(f"    {e['type']:<7} {e['reason']}: {e['message'][:160]}", flush=True)
    status = st.status(stack, NAME)
    retrain = status.get("retrain") or {}
    split = traffic.recent_versions(5)
    total = sum(split.values()) or 1
    shares = " ".join(f"{v}:{100 * n / total:.0f}%" for v, n in sorted(split.items()))
    say(
        f"{status.get('phase', '-'):<11} stable {status.get('stableVersion', '-'):<3} "
        f"candidate {status.get('candidateVersion') or '-':<3} weight "
        f"{status.get('canaryWeight', 0):>3}% | retrain {retrain.get('phase', '-'):<16} | "
        f"answers {shares} | labels {labeller.snapshot()['rows']}"
    )


def summary(stack: st.Stack, traffic: Traffic) -> None:
    print("\nRetraining runs:")
    for run in loop.runs(stack, NAME):
        print(
            f"  run {run.get('id')}: {run.get('trigger')} {run.get('alert', '')} "
            f"{run.get('value', '')} -> version {run.get('version', '-')}: "
            f"{run.get('outcome', run.get('reason', ''))}\n    gate: {run.get('gateSummary', '-')}"
        )
    print("Rollouts:")
    for entry in st.status(stack, NAME).get("history") or []:
        print(f"  {entry.get('version')}: {entry.get('outcome')} ({entry.get('message', '')})")
    tally = traffic.tally
    print(f"Traffic: {tally.sent} requests, {tally.lost} lost, by version {dict(tally.by_version)}")


def run_loop(cluster: Cluster) -> bool:
    """The loop; True when version 2 ended up stable."""
    closed = False
    with tempfile.TemporaryDirectory() as tmp, mlflow_registry(Path(tmp) / "mlflow") as registry:
        ns = f"md-loop-{uuid.uuid4().hex[:6]}"
        say(f"installing the chart in {ns}, and the rules into Prometheus")
        stack = st.install(cluster, ns, sets=(f"networkPolicy.registryPorts={{{PORT}}}",))
        try:
            st.load_rules(cluster, ns)
            first = loop.register_first(registry, Path(tmp), NAME)
            say(f"registered {first.uri} as models:/{NAME}@{loop.ALIAS}")
            loop.prepare_store(registry, stack)
            cluster.apply(loop.manifest(stack, registry, NAME, first))
            say("deployed: spec.retrain with the example trainer, approval auto")
            st.wait_phase(stack, NAME, "Healthy", version="v1", timeout=300)
            ip = st.answering_ip(stack, NAME)
            # Outcomes are reported from the start, as a user's are: the window mixes the old
            # world's inputs with the new, and the new version's drift reference is still only
            # the rows since the drift began.
            labeller = Labeller(ip, truth=example_truth)
            # 16 rows a request: thousands of labelled rows by the time the drift alert fires
            traffic = Traffic(ip, rate=20, batch=16, max_seconds=TIMEOUT, on_answer=labeller)
            seen: set[str] = set()
            with traffic:
                say("traffic on, every answer labelled; in 30 s the world changes")
                time.sleep(30)
                traffic.shift()
                labeller.truth = changed_truth
                say("the services are busier and slower now, and incidents follow latency")
                deadline = time.monotonic() + TIMEOUT
                while time.monotonic() < deadline:
                    narrate(stack, traffic, labeller, seen)
                    status = st.status(stack, NAME)
                    if status.get("stableVersion") == "2" and not status.get("candidateVersion"):
                        say("version 2 is stable: the loop closed with no human")
                        closed = True
                        break
                    time.sleep(5)
                else:
                    say(f"the loop did not close within {TIMEOUT} s")
                narrate(stack, traffic, labeller, seen)
            summary(stack, traffic)
            if closed:
                reference = loop.model_card(ip)["card"]["training_data"].get("reference", {})
                print(f"Version 2's drift reference: {reference}")
        finally:
            st.uninstall(stack)
            st.unload_rules(cluster, ns)
    return closed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo_loop", description=__doc__)
    parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    started = time.time()
    outcome: dict[str, Any] = {}

    def run(cluster: Cluster) -> None:
        outcome["ok"] = run_loop(cluster)

    on_cluster(run)
    say(f"done in {time.time() - started:.0f} s")
    return 0 if outcome.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())

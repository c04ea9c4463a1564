"""The scale benchmark's synthetic exporter: one process that Prometheus scrapes in place of
every fake-node pod (`python -m e2e.scale.exporter --faults FILE`).

Prometheus' `fake-node-pods` job (e2e/cluster/render.py) discovers the kwok pods like real
ones and scrapes each at ``/metrics/<namespace>/<modeldeployment>/<slot>/<role>/<version>``
here, so every pod is its own target with the labels a real pod gets (and its own `up`). The
role in the path follows the operator's pod labels, so a promotion or rollback is seen as
soon as Prometheus rediscovers the pod. The answer has the model server's metric families
(names from modeldeploy.server.contract) with counters that grow with time since the target
was first scraped, so increase() and rate() work, and exact proportions, so a healthy
candidate's mean and bins equal the stable's: nothing fires for it. The faults file maps
``namespace/name`` to ``diverge`` (the candidate's mean prediction moves) or ``drift`` (its
input bins move); it is re-read when it changes.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from modeldeploy.server import contract as c

MODEL = "scale-model"
RATE = 10.0  # predictions (and requests) per second per pod
MEAN, VARIANCE = 0.3, 0.04
DIVERGED_MEAN = 0.8
BINS = (0.25, 0.25, 0.25, 0.25)
DRIFTED_BINS = (0.7, 0.1, 0.1, 0.1)
LATENCY = 0.008
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
FEATURE = "x"


def exposition(role: str, version: str, seconds: float, fault: str) -> str:
    """The text a model server with these counters would answer (format 0.0.4)."""
    n = RATE * seconds
    candidate = role == c.ROLES[1]
    mean = DIVERGED_MEAN if candidate and fault == "diverge" else MEAN
    bins = DRIFTED_BINS if candidate and fault == "drift" else BINS
    base = f'{c.LABEL_MODEL}="{MODEL}",{c.LABEL_VERSION}="{version}",{c.LABEL_ROLE}="{role}"'
    lines = [
        f'{c.METRIC_MODEL_INFO}{{{base},sha256="{"0" * 64}"}} 1',
        f'{c.METRIC_REQUESTS}{{{base},{c.LABEL_OUTCOME}="ok"}} {n:.3f}',
        f'{c.METRIC_REQUESTS}{{{base},{c.LABEL_OUTCOME}="server_error"}} 0',
        f"{c.METRIC_PREDICTIONS}{{{base}}} {n:.3f}",
        f"{c.METRIC_PREDICTION_SUM}{{{base}}} {n * mean:.6f}",
        f"{c.METRIC_PREDICTION_SUM_SQUARES}{{{base}}} {n * (mean * mean + VARIANCE):.6f}",
    ]
    hist = c.METRIC_REQUEST_DURATION
    for le in LATENCY_BUCKETS:
        lines.append(f'{hist}_bucket{{{base},le="{le}"}} {n if le >= LATENCY else 0:.3f}')
    lines += [
        f'{hist}_bucket{{{base},le="+Inf"}} {n:.3f}',
        f"{hist}_sum{{{base}}} {n * LATENCY:.6f}",
        f"{hist}_count{{{base}}} {n:.3f}",
    ]
    for i, (ref, live) in enumerate(zip(BINS, bins, strict=True)):
        fb = f'{base},{c.LABEL_FEATURE}="{FEATURE}",{c.LABEL_BIN}="{i}"'
        lines.append(f"{c.METRIC_FEATURE_BIN}{{{fb}}} {n * live:.3f}")
        lines.append(f"{c.METRIC_FEATURE_REFERENCE_FRACTION}{{{fb}}} {ref}")
    return "\n".join(lines) + "\n"


class Faults:
    """``namespace/name`` -> fault kind, from a JSON file re-read when it changes."""

    def __init__(self, path: Path | None) -> None:
        self.path, self._mtime, self.kinds = path, 0.0, dict[str, str]()
        self._lock = threading.Lock()

    def get(self, key: str) -> str:
        if self.path is not None:
            with self._lock:
                try:
                    mtime = self.path.stat().st_mtime
                    if mtime != self._mtime:
                        self.kinds, self._mtime = json.loads(self.path.read_text()), mtime
                except (OSError, ValueError):
                    pass
        return self.kinds.get(key, "")


class Exporter:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.first_seen: dict[str, float] = {}
        self.scrapes = 0
        self._lock = threading.Lock()

    def answer(self, path: str) -> tuple[int, str]:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 6 or parts[0] != "metrics":
            return 404, "want /metrics/<namespace>/<modeldeployment>/<slot>/<role>/<version>\n"
        _, ns, name, _slot, role, version = parts
        now = time.monotonic()
        with self._lock:
            start = self.first_seen.setdefault(path, now)
            self.scrapes += 1
        if not role:  # the operator has not labelled the pod yet: a server that just started
            return 200, ""
        return 200, exposition(role, version, now - start, self.faults.get(f"{ns}/{name}"))


def serve(host: str, port: int, faults: Path | None) -> ThreadingHTTPServer:
    exporter = Exporter(Faults(faults))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once

        def do_GET(self) -> None:
            code, text = exporter.answer(self.path)
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    from e2e.cluster import config

    p = argparse.ArgumentParser(prog="python -m e2e.scale.exporter", description=__doc__)
    p.add_argument("--host", default=config.HOST_IP)
    p.add_argument("--port", type=int, default=config.SCALE_EXPORTER_PORT)
    p.add_argument("--faults", type=Path, help="JSON: {namespace/name: diverge|drift}")
    args = p.parse_args(argv)
    serve(args.host, args.port, args.faults).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

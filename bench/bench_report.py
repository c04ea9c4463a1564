"""The serving benchmark's report: the table, the ratios against the goals and the floor."""

from __future__ import annotations

from benchlib import CONNECTIONS, Result


def table(results: list[Result], ours_name: str) -> None:
    by = {(r.server, r.connections): r for r in results}
    print(f"\n| server | conns | req/s | p50 ms | p99 ms | {ours_name} / this (req/s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in dict.fromkeys(r.server for r in results):
        for c in CONNECTIONS:
            r, ours = by[(name, c)], by[(ours_name, c)]
            ratio = ours.requests_per_s / r.requests_per_s if r.requests_per_s else float("nan")
            print(
                f"| {name} | {c} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                f"{ratio:.2f}x |"
            )


def against(by: dict[tuple[str, int], Result], ours_name: str, name: str, goal: float) -> None:
    if (name, 16) not in by:
        return
    ours, other = by[(ours_name, 16)], by[(name, 16)]
    ratio = ours.requests_per_s / other.requests_per_s
    print(
        f"  {ours_name} / {name}: {ratio:.1f}x req/s (goal >= {goal:g}x), p99 "
        f"{ours.p99_ms:.2f} ms vs {other.p99_ms:.2f} ms"
        f" ({'lower' if ours.p99_ms < other.p99_ms else 'NOT lower'})"
    )


def report(
    results: list[Result],
    batch_rows: float,
    model_call_s: float,
    monitoring: tuple[float, float],
    bookkeeping: tuple[float, float],
    raw_alternating: float,
    raw_onewrite_alternating: float,
) -> None:
    numeric = [r for r in results if not r.server.endswith("-frame")]
    frame = [r for r in results if r.server.endswith("-frame")]
    by = {(r.server, r.connections): r for r in results}
    print("\nthe example model (array input, 5 numeric features):")
    table(numeric, "ours")
    if frame:
        print("\nthe DataFrame pipeline (ColumnTransformer, string categoricals):")
        table(frame, "ours-frame")
    ours = by[("ours", 16)]
    print("\nat 16 connections:")
    against(by, "ours", "textbook", 8.0)
    against(by, "ours", "mlserver", 4.0)
    against(by, "ours-frame", "mlserver-frame", 4.0)
    against(by, "ours-frame", "textbook-frame", 4.0)
    raw = by[("raw-asgi", 16)]
    const = by[("constant", 16)]
    print(
        f"  ours / raw ASGI app: {ours.requests_per_s / raw.requests_per_s:.2f}x req/s "
        f"(goal >= 0.45x); ours / FastAPI constant: "
        f"{ours.requests_per_s / const.requests_per_s:.2f}x"
    )
    on, off = monitoring
    print(
        f"  ours / raw ASGI app, medians of alternating runs side by side: "
        f"{on / raw_alternating:.2f}x ({on:,.0f} vs {raw_alternating:,.0f} req/s; goal >= 0.45x)"
    )
    print(
        f"  ours / raw ASGI app on our one-write protocol, side by side: "
        f"{on / raw_onewrite_alternating:.2f}x ({raw_onewrite_alternating:,.0f} req/s)"
    )
    print(
        f"  monitoring cost (medians of alternating runs): drift bookkeeping on {on:,.0f} "
        f"req/s vs off {off:,.0f} req/s "
        f"({(1 - on / off) * 100:.1f}% of throughput)"
    )
    per_request = (bookkeeping[0] - bookkeeping[1]) / batch_rows
    print(
        f"  drift bookkeeping in process: {bookkeeping[0] * 1e6:.1f} us per batch of "
        f"{batch_rows:.0f} rows with it, "
        f"{bookkeeping[1] * 1e6:.1f} us without: {per_request * 1e6:.2f} us per request "
        f"({per_request * on * 100:.1f}% of a request's time at {on:,.0f} req/s)"
    )
    floor_s = 1.0 / raw.requests_per_s + model_call_s / batch_rows
    print(
        f"  floor: raw ASGI app {1e6 / raw.requests_per_s:.0f} us + model call "
        f"{model_call_s * 1e6:.0f} us (as the server makes it) "
        f"/ {batch_rows:.1f} rows per call = {floor_s * 1e6:.0f} us per request = "
        f"{1 / floor_s:,.0f} req/s; ours reaches {ours.requests_per_s * floor_s * 100:.0f}% of it"
    )

"""The ingest benchmark's report: a run's figures, medians over runs, the ratio to the bare
handler, the goals and the printed table."""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
from typing import Any

from benchmarks.kit.processes import Pinning

GOAL_RATIO = 0.35
GOAL_P99_MS = 25.0


@dataclasses.dataclass
class RunResult:
    target: str
    index: int
    alerts_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    count: int
    errors: int
    error_statuses: dict[str, int]
    not_created: int
    server_cpu_pct: float
    redis_cpu_pct: float | None
    client_cpu_pct: float
    server_cpu_us_per_alert: float
    redis_cpu_us_per_alert: float | None
    server_log_bytes: int
    # Redis's append-only file rewrites inside the measured window (polled every 0.1 s), and the
    # p99 of the requests that finished during them and outside them (None: no such request).
    rewrite_s: float | None = None
    p99_during_rewrites_ms: float | None = None
    p99_outside_rewrites_ms: float | None = None


def cpu_figures(cpu: dict[str, float], seconds: float, count: int) -> dict[str, float | None]:
    """RunResult's CPU fields from the CPU seconds of "server", "client" and, if watched,
    "redis" over a window of `seconds` in which `count` alerts were answered."""

    def pct(name: str) -> float:
        return round(100 * cpu[name] / seconds, 1)

    def per_alert(name: str) -> float:
        return round(1e6 * cpu[name] / count, 1) if count else math.nan

    watched_redis = "redis" in cpu
    return {
        "server_cpu_pct": pct("server"),
        "redis_cpu_pct": pct("redis") if watched_redis else None,
        "client_cpu_pct": pct("client"),
        "server_cpu_us_per_alert": per_alert("server"),
        "redis_cpu_us_per_alert": per_alert("redis") if watched_redis else None,
    }


def medians(runs: list[RunResult]) -> dict[str, float]:
    keys = (
        "alerts_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "server_cpu_pct",
        "client_cpu_pct",
        "server_cpu_us_per_alert",
    )
    out = {k: round(statistics.median(getattr(r, k) for r in runs), 2) for k in keys}
    for k in ("rewrite_s", "p99_during_rewrites_ms", "p99_outside_rewrites_ms"):
        values = [getattr(r, k) for r in runs if getattr(r, k) is not None]
        if values:
            out[k] = round(statistics.median(values), 2)
    return out


def summary_text(report: dict[str, Any]) -> str:
    p = report["parameters"]
    lines = [
        f"alerthub ingest benchmark: {p['connections']} connections, {p['runs']} x "
        f"({p['warmup_s']} s warm-up + {p['duration_s']} s) per target, "
        f"hub log level {p['log_level']}, body ~{p['body_bytes']} B",
        f"{'run':<7} {'alerts/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'srv cpu%':>8} {'redis%':>7} {'cli cpu%':>8} {'srv us/alert':>12} "
        f"{'rewrite s':>9} {'p99 in/out of rewrites':>22}",
    ]
    for r in report["runs"]:
        redis_pct = "-" if r["redis_cpu_pct"] is None else f"{r['redis_cpu_pct']:.0f}"
        rewrite = "-" if r["rewrite_s"] is None else f"{r['rewrite_s']:.1f}"
        split = " / ".join(
            "-" if r[k] is None else f"{r[k]:.2f}"
            for k in ("p99_during_rewrites_ms", "p99_outside_rewrites_ms")
        )
        lines.append(
            f"{r['target'] + str(r['index']):<7} {r['alerts_per_s']:>9.0f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['errors']:>6} {r['server_cpu_pct']:>8.0f} "
            f"{redis_pct:>7} {r['client_cpu_pct']:>8.0f} {r['server_cpu_us_per_alert']:>12.0f} "
            f"{rewrite:>9} {split:>22}"
        )
    for target in ("bare", "hub"):
        m = report["median"][target]
        lines.append(
            f"median {target:<4}: {m['alerts_per_s']:.0f} alerts/s, p50 {m['p50_ms']:.2f} ms, "
            f"p99 {m['p99_ms']:.2f} ms, server CPU {m['server_cpu_us_per_alert']:.0f} us/alert"
            + (
                f"; p99 during / outside Redis rewrites {m['p99_during_rewrites_ms']:.2f} / "
                f"{m['p99_outside_rewrites_ms']:.2f} ms"
                if "p99_during_rewrites_ms" in m and "p99_outside_rewrites_ms" in m
                else ""
            )
        )
    g = report["goals"]
    lines.append(
        f"ratio hub/bare = {report['ratio']:.3f} (goal >= {GOAL_RATIO}: "
        f"{'met' if g['ratio_met'] else 'MISSED'}); hub p99 {report['median']['hub']['p99_ms']:.2f}"
        f" ms (goal < {GOAL_P99_MS:g} ms: {'met' if g['p99_met'] else 'MISSED'}); "
        f"errors {g['errors']}"
    )
    return "\n".join(lines)


def build_report(
    args: argparse.Namespace,
    runs: list[RunResult],
    pinning: Pinning,
    body_bytes: int,
    aof_bytes: int,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON report of an invocation; `extra` (start time, machine) goes after its title."""
    bare_runs = [r for r in runs if r.target == "bare"]
    hub_runs = [r for r in runs if r.target == "hub"]
    median = {"bare": medians(bare_runs), "hub": medians(hub_runs)}
    ratio = round(median["hub"]["alerts_per_s"] / median["bare"]["alerts_per_s"], 3)
    cpu_ratio = round(
        median["bare"]["server_cpu_us_per_alert"] / median["hub"]["server_cpu_us_per_alert"], 3
    )
    errors = sum(r.errors for r in runs)
    not_created = sum(r.not_created for r in hub_runs)
    report: dict[str, Any] = {
        "benchmark": "alerthub ingest: POST /v1/alerts, hub vs bare aiohttp handler",
        **extra,
        "parameters": {
            "connections": args.connections,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "runs": args.runs,
            "log_level": args.log_level,
            "body_bytes": body_bytes,
            "pinning": pinning.describe(),
            "redis": "redis-server as `alerthub serve` configures it (hub/store/embedded.py): "
            "appendonly yes, appendfsync everysec",
            "redis_transport": args.redis_transport,
            "store": args.store,
            "generator": args.generator,
            "quick": args.quick,
            "hub_rate_limit_per_minute": 10**9,
        },
        "runs": [dataclasses.asdict(r) for r in runs],
        "median": median,
        "ratio": ratio,
        "cpu_cost_ratio": cpu_ratio,
        "goals": {
            "ratio_min": GOAL_RATIO,
            "p99_max_ms": GOAL_P99_MS,
            "ratio_met": ratio >= GOAL_RATIO,
            "p99_met": median["hub"]["p99_ms"] < GOAL_P99_MS,
            "errors": errors,
            "hub_answers_not_created": not_created,
            "all_met": ratio >= GOAL_RATIO
            and median["hub"]["p99_ms"] < GOAL_P99_MS
            and errors == 0,
        },
        "aof_bytes_at_end": aof_bytes,
        "notes": [
            "generator python: alerts/s counts requests completed inside the measured window "
            "after the warm-up; p50/p99 are of those requests, client-side (perf_counter around "
            "each request). generator wrk: a warm-up wrk run, then a measured one; alerts/s and "
            "the percentiles are wrk's own (benchmarks/kit/wrk_post.lua)",
            "runs alternate bare, hub, bare, hub, ...; medians are over runs; "
            "ratio = median hub alerts/s / median bare alerts/s",
            "every alert has a unique id and unique indicators, so every hub answer is 201 "
            "created (hub_answers_not_created counts any other)",
            f"redis reached over {args.redis_transport}; "
            "one hub process and one bare process, both on the same aiohttp and event loop "
            "(uvloop where installed), access log off; "
            "the hub's log goes to a file in the temporary folder",
            f"pinning: {pinning.describe()}; cpu_pct are of one core over the measured window; "
            "a client_cpu_pct near 100 means the load generator, not the server, set the pace",
            "rewrite_s: seconds of the measured window during which redis-server rewrote its "
            "append-only file (INFO persistence polled every 0.1 s); p99_during/outside_rewrites "
            "split the hub's requests by the last poll before each finished",
            "server_cpu_us_per_alert is the server process's CPU time (all threads, /proc) per "
            "counted alert; cpu_cost_ratio = bare us/alert / hub us/alert is the throughput ratio "
            "one core would allow if neither were held back by the client",
            f"with a closed loop of {args.connections} connections, p50 >= connections / "
            "alerts/s (Little's law), so a p99 under 25 ms needs well over "
            f"{args.connections / 0.025:.0f} alerts/s",
            "store fresh: every hub run starts a new redis-server and hub process on an empty "
            "store; store shared: one store for all runs, so later hub runs see every earlier "
            "alert, and the append-only file's rewrites (at 64 MB, then whenever it doubles) copy "
            "the whole store in a forked child that competes for the two cores",
        ],
    }
    return report

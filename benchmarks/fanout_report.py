"""The fan-out benchmark's report: medians over runs, goals, the printed table."""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
from typing import Any

GOAL_P99_MS = {"webhook": 50.0, "sse": 100.0}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str  # "webhook" | "sse"
    subs: int
    rate: float  # alerts per second
    duration: float  # measured seconds of publishing
    warmup: float  # seconds of publishing before them, checked but not in the latencies
    procs: int  # receiver processes


MEDIAN_KEYS = (
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "p50_first_fifth_ms",
    "p50_last_fifth_ms",
    "ingest_p99_ms",
    "hub_cpu_us_per_event",
    "redis_cpu_us_per_event",
    "redis_calls_per_event",
    "fanout_lag_max_s",
)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in runs if not math.isnan(r[key])]
        out[key] = round(statistics.median(values), 2) if values else math.nan
    out["hub_cpu_pct"] = round(statistics.median(r["cpu_pct"]["hub"] for r in runs), 1)
    out["redis_cpu_pct"] = round(statistics.median(r["cpu_pct"]["redis"] for r in runs), 1)
    out["missing_at_end"] = sum(r["missing_at_end"] for r in runs)
    out["lost"] = sum(r["lost"] for r in runs)
    out["duplicates"] = sum(r["duplicates"] for r in runs)
    return out


def goals(name: str, median: dict[str, Any]) -> dict[str, Any]:
    p99_met = median["p99_ms"] < GOAL_P99_MS[name]
    # Exactly once, and seen to be: every pair arrived before the drain ended.
    none_lost = median["missing_at_end"] == 0 and median["duplicates"] == 0
    return {
        "p99_max_ms": GOAL_P99_MS[name],
        "p99_met": p99_met,
        "exactly_once_met": none_lost,
        "all_met": p99_met and none_lost,
    }


def run_line(r: dict[str, Any]) -> str:
    dirty = "+" if r["hub_changes"] else " "
    return (
        f"{r['commit'] + dirty:<9} {r['scenario'] + str(r['run']):<9} "
        f"{r['subscriptions']:>5} {r['rate_per_s']:>6.0f} "
        f"{r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} "
        f"{r['p50_last_fifth_ms']:>9.1f} {r['missing_at_end']:>6} {r['lost']:>6} "
        f"{r['duplicates']:>5} "
        f"{r['cpu_pct']['hub']:>5.0f} {r['cpu_pct']['redis']:>6.0f} "
        f"{r['hub_cpu_us_per_event']:>7.0f} {r['redis_cpu_us_per_event']:>7.0f}"
    )


def summary_text(report: dict[str, Any]) -> str:
    lines = [
        "alerthub fan-out benchmark: latency from the 201 to the receiver (ms)",
        f"{'hub code':<9} {'run':<9} {'subs':>5} {'rate/s':>6} "
        f"{'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} "
        f"{'p50 last5':>9} {'miss':>6} {'lost':>6} {'dups':>5} {'hub%':>5} {'redis%':>6} "
        f"{'hub us':>7} {'redis us':>7}",
    ]
    lines += [run_line(r) for r in report["runs"]]
    commits = sorted({r["commit"] + ("+" if r["hub_changes"] else "") for r in report["runs"]})
    if len(commits) > 1:
        lines.append(f"WARNING: the hub's code changed between runs ({', '.join(commits)})")
    for name, m in report["median"].items():
        g = report["goals"][name]
        lines.append(
            f"median {name}: p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms (goal < "
            f"{g['p99_max_ms']:g} ms: {'met' if g['p99_met'] else 'MISSED'}), missing at end "
            f"{m['missing_at_end']}, lost {m['lost']}, "
            f"duplicates {m['duplicates']} ({'met' if g['exactly_once_met'] else 'MISSED'}); "
            f"hub {m['hub_cpu_us_per_event']:.0f} us + redis {m['redis_cpu_us_per_event']:.0f} "
            "us CPU per delivered event"
        )
    return "\n".join(lines)


def build_report(
    args: argparse.Namespace, scenarios: list[Scenario], runs: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    median = {s.name: medians([r for r in runs if r["scenario"] == s.name]) for s in scenarios}
    return {
        "benchmark": "alerthub fan-out: latency from the 201 to webhook receivers and SSE clients",
        **extra,
        "parameters": {
            "scenarios": [dataclasses.asdict(s) for s in scenarios],
            "runs": args.runs,
            "quick": args.quick,
            "log_level": args.log_level,
            "drain_idle_s": args.drain_idle,
            "drain_timeout_s": args.drain_timeout,
            "redis": "redis-server as `alerthub serve` runs it (store/embedded.py), Unix socket",
            "pinning": "none",
        },
        "runs": runs,
        "median": median,
        "goals": {name: goals(name, m) for name, m in median.items()},
    }

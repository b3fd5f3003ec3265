"""What ALERTHUB_MIN_REPLICAS_ACK costs: ingest throughput and latency with 0 (answer once the
primary has the alert) and 1 (once a replica has it too, Redis WAIT), side by side.

    .venv/bin/python -m benchmarks.replicas_ack [--runs 2] [--duration 8] [--connections 32]
        [--quick] [--out PATH]

Starts, in a temporary folder, a redis-server primary and one replica on loopback TCP (append-only
file on, as shipped), then for each run one hub process (`python -m hub serve`) with the setting
under test, on a key prefix of its own; runs alternate 0, 1, 0, 1, ... so that each figure has its
baseline from the same minute. The load is benchmarks/ingest.py's (kit/load.py's closed loop): N
keep-alive connections posting unique valid alerts. Prints the medians and writes
benchmarks/results/replicas-ack-<UTC time>.json (or --out). Exits 1 when a post was not created.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.kit.load import AlertBodies, closed_loop, register_node
from benchmarks.kit.measurement import percentile
from benchmarks.kit.processes import HUB_ARGV, hub_env, run_async, start_server
from benchmarks.kit.report import add_standard_args, machine, write_json
from hub.store.embedded import RedisServer, free_port, start_redis_server

BOOTSTRAP_TOKEN = "bench-operator-replicas-ack"


def start_pair(folder: Path) -> tuple[RedisServer, RedisServer]:
    primary = start_redis_server(
        folder / "primary", port=free_port(), extra_config=("repl-diskless-sync-delay 0",)
    )
    port = primary.url.rsplit(":", 1)[1].split("/")[0]
    try:
        replica = start_redis_server(
            folder / "replica", port=free_port(), extra_config=(f"replicaof 127.0.0.1 {port}",)
        )
    except BaseException:
        primary.stop()
        raise
    return primary, replica


def one_run(
    folder: Path, redis_url: str, acks: int, run: int, args: argparse.Namespace
) -> dict[str, Any]:
    env = hub_env(
        redis_url,
        BOOTSTRAP_TOKEN,
        "warning",
        ALERTHUB_MIN_REPLICAS_ACK=str(acks),
        ALERTHUB_KEY_PREFIX=f"bench{run}",
    )
    hub = start_server(f"hub-{run}", HUB_ARGV, env, folder)
    try:
        hub.wait_ready("/readyz")
        token = run_async(register_node(hub.base_url, BOOTSTRAP_TOKEN))
        done = run_async(
            closed_loop(
                f"{hub.base_url}/v1/alerts",
                token,
                AlertBodies(),
                args.connections,
                args.warmup,
                args.duration,
                watch={},
            )
        )
    finally:
        hub.stop()
    seconds = sorted(latency for _, latency in done.latencies)
    return {
        "min_replicas_ack": acks,
        "requests_per_s": len(seconds) / args.duration,
        "p50_ms": percentile(seconds, 0.50) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
        "statuses": dict(done.statuses),
        "not_created": done.not_created,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs per setting (they alternate)")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    add_standard_args(parser, "one run per setting of 2 s, 8 connections")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 2.0, 0.5
        args.connections = min(args.connections, 8)
    with tempfile.TemporaryDirectory(prefix="alerthub-ack-") as tmp:
        folder = Path(tmp)
        primary, replica = start_pair(folder)
        try:
            runs = [
                one_run(folder, primary.url, acks, 2 * n + acks, args)
                for n in range(args.runs)
                for acks in (0, 1)
            ]
        finally:
            replica.stop()
            primary.stop()
    medians = {
        str(acks): {
            key: statistics.median(r[key] for r in runs if r["min_replicas_ack"] == acks)
            for key in ("requests_per_s", "p50_ms", "p99_ms")
        }
        for acks in (0, 1)
    }
    report = {
        "machine": machine(),
        "connections": args.connections,
        "runs": runs,
        "medians": medians,
    }
    out = write_json(report, args.out, "replicas-ack")
    for acks, figures in medians.items():
        print(
            f"MIN_REPLICAS_ACK={acks}: {figures['requests_per_s']:.0f} alerts/s,"
            f" p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"
        )
    for run in runs:
        print(f"  run: {run}")
    print(f"wrote {out}")
    lost = [r for r in runs if r["not_created"] or set(r["statuses"]) - {"201"}]
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())

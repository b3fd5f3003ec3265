"""What ALERTHUB_MIN_REPLICAS_ACK costs: ingest throughput and latency with 0 (answer once the
primary has the alert) and 1 (once a replica has it too, Redis WAIT), side by side.

    .venv/bin/python benchmarks/replicas_ack.py [--runs 2] [--duration 8] [--connections 32]

Starts, in a temporary folder, a redis-server primary and one replica on loopback TCP (append-only
file on, as shipped), then for each run one hub process (`python -m hub serve`) with the setting
under test, on a key prefix of its own; runs alternate 0, 1, 0, 1, ... so that each figure has its
baseline from the same minute. The load is benchmarks/ingest.py's: N keep-alive connections posting
unique valid alerts. Prints the medians and writes benchmarks/results/replicas-ack-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from ingest import AlertBodies, drive, hub_env, machine, percentile, register_node, start_server

from hub.store.embedded import RedisServer, free_port, start_redis_server

RESULTS = Path(__file__).resolve().parent / "results"


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
    env = hub_env(redis_url, "warning")
    env.update(ALERTHUB_MIN_REPLICAS_ACK=str(acks), ALERTHUB_KEY_PREFIX=f"bench{run}")
    hub = start_server(f"hub-{run}", [sys.executable, "-m", "hub", "serve"], env, folder)
    try:
        hub.wait_ready("/readyz")
        token = asyncio.run(register_node(hub.base_url))
        latencies, statuses, _, _, _ = asyncio.run(
            drive(
                f"{hub.base_url}/v1/alerts",
                token,
                AlertBodies(),
                args.connections,
                args.warmup,
                args.duration,
                {},
            )
        )
    finally:
        hub.stop()
    seconds = sorted(latency for _, latency in latencies)
    return {
        "min_replicas_ack": acks,
        "requests_per_s": len(seconds) / args.duration,
        "p50_ms": percentile(seconds, 0.50) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
        "statuses": dict(statuses),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs per setting (they alternate)")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    args = parser.parse_args(argv)
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
        acks: {
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
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"replicas-ack-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    for acks, figures in medians.items():
        print(
            f"MIN_REPLICAS_ACK={acks}: {figures['requests_per_s']:.0f} alerts/s,"
            f" p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"
        )
    for run in runs:
        print(f"  run: {run}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Ingest throughput and latency of one hub process against a bare aiohttp handler.

    .venv/bin/python -m benchmarks.ingest [--runs 3] [--duration 10] [--log-level warning|info]
        [--quick] [--out PATH]

Starts, in a temporary folder: a real redis-server (append-only file on, fsync every second, as in
production; reached over a Unix socket as `alerthub serve`'s embedded Redis is, or TCP with
--redis-transport tcp), one hub process (`python -m hub serve`) and one bare aiohttp server
(benchmarks/bare_server.py: parse the JSON, answer 201). This process is the load generator: an
asyncio aiohttp client with N keep-alive connections, each posting unique valid threat alerts
(unique `id` and indicators, so every answer is `created`) to `POST /v1/alerts`. Runs alternate
bare, hub, bare, hub, ... so that each hub figure has its baseline from the same minute. Each run
is a warm-up followed by a measured window; requests that complete inside the window count.

On two or more cores the servers are pinned to the first core and the client to the second, so the
client does not steal the server's CPU; redis-server runs on the client's core by default, so that
the hub's figure is the hub's (see --redis-cpu for the other placements). Each hub run gets a new
redis-server and hub process on an empty store by default (see --store). Everything runs on
127.0.0.1; every process and the temporary folder are removed at the end, also on Ctrl-C or an
error.

Writes benchmarks/results/ingest-<UTC time>.json, or --out (per-run figures, medians, ratio,
goals; ingest_report.py) and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import math
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/ingest.py): the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ingest_report import RunResult, build_report, cpu_figures, summary_text
from benchmarks.kit.load import AlertBodies, closed_loop, register_node, split_by_rewrites
from benchmarks.kit.measurement import percentile
from benchmarks.kit.processes import (
    Pinning,
    Server,
    Stack,
    affinity,
    hub_env,
    plan_pinning,
    python_env,
    start_server,
    stop_on_sigterm,
)
from benchmarks.kit.report import add_standard_args, machine, utc_stamp, write_json
from benchmarks.kit.wrk import drive_wrk, find_wrk

BOOTSTRAP_TOKEN = "bench-operator-" + secrets.token_urlsafe(18)
NODE_ID = "bench-al-cert"


@dataclasses.dataclass
class HubStack:
    """A redis-server with its data in `folder`, one hub process on it, and a publishing node."""

    stack: Stack
    token: str

    @property
    def hub(self) -> Server:
        return self.stack.hub

    @classmethod
    def start(cls, folder: Path, args: argparse.Namespace, pinning: Pinning) -> HubStack:
        stack = Stack.start(
            folder,
            lambda url: hub_env(url, BOOTSTRAP_TOKEN, args.log_level),
            tcp=args.redis_transport == "tcp",
            redis_cpus=pinning.redis,
            hub_cpus=pinning.server,
        )
        try:
            token = asyncio.run(register_node(stack.hub.base_url, BOOTSTRAP_TOKEN, NODE_ID))
        except BaseException:
            stack.stop()
            raise
        return cls(stack, token)

    def stop(self) -> None:
        self.stack.stop()


def measure(
    target: str,
    index: int,
    server: Server,
    token: str | None,
    bodies: AlertBodies,
    args: argparse.Namespace,
    redis_pid: int | None,
    redis_url: str | None = None,
) -> RunResult:
    watch = {"server": server.process.pid}
    if redis_pid is not None:
        watch["redis"] = redis_pid
    log_before = server.log_path.stat().st_size
    if args.generator == "wrk":
        result = _measure_wrk(target, index, server, token, bodies, args, watch, redis_url)
        result.server_log_bytes = server.log_path.stat().st_size - log_before
        return result
    started = time.perf_counter()
    run = asyncio.run(
        closed_loop(
            f"{server.base_url}/v1/alerts",
            token,
            bodies,
            args.connections,
            args.warmup,
            args.duration,
            watch,
            redis_url,
        )
    )
    log_bytes = server.log_path.stat().st_size - log_before
    statuses, cpu = run.statuses, run.cpu
    latencies = sorted(latency for _, latency in run.latencies)
    rewriting, during, outside = split_by_rewrites(run.latencies, run.polls, started + args.warmup)

    def p99_ms(values: list[float]) -> float | None:
        return round(percentile(values, 0.99) * 1000, 2) if values else None

    count = len(latencies)
    errors = sum(n for status, n in statuses.items() if not status.startswith("2"))

    return RunResult(
        target=target,
        index=index,
        alerts_per_s=round(count / args.duration, 1),
        p50_ms=round(percentile(latencies, 0.50) * 1000, 2),
        p90_ms=round(percentile(latencies, 0.90) * 1000, 2),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        max_ms=round((latencies[-1] if latencies else math.nan) * 1000, 2),
        count=count,
        errors=errors,
        error_statuses={s: n for s, n in statuses.items() if not s.startswith("2")},
        not_created=run.not_created,
        **cpu_figures(cpu, args.duration, count),
        server_log_bytes=log_bytes,
        rewrite_s=round(rewriting, 1) if redis_url is not None else None,
        p99_during_rewrites_ms=p99_ms(during) if redis_url is not None else None,
        p99_outside_rewrites_ms=p99_ms(outside) if redis_url is not None else None,
    )


def _measure_wrk(
    target: str,
    index: int,
    server: Server,
    token: str | None,
    bodies: AlertBodies,
    args: argparse.Namespace,
    watch: dict[str, int],
    redis_url: str | None,
) -> RunResult:
    """One run with wrk as the load generator (--generator wrk)."""
    run, cpu, polls = asyncio.run(
        drive_wrk(
            f"{server.base_url}/v1/alerts",
            token,
            bodies.template_file,
            args.connections,
            args.warmup,
            args.duration,
            watch,
            redis_url,
        )
    )
    rewriting, _, _ = split_by_rewrites([], polls, 0.0)  # every poll is inside the window
    count = run.requests - run.non_2xx

    errors = run.non_2xx + run.socket_errors
    return RunResult(
        target=target,
        index=index,
        alerts_per_s=round(count / run.seconds, 1),
        p50_ms=round(run.p50_s * 1000, 2),
        p90_ms=round(run.p90_s * 1000, 2),
        p99_ms=round(run.p99_s * 1000, 2),
        max_ms=round(run.max_s * 1000, 2),
        count=count,
        errors=errors,
        error_statuses={"non-2xx": run.non_2xx, "socket": run.socket_errors} if errors else {},
        not_created=run.not_created,
        **cpu_figures(cpu, run.seconds, count),
        server_log_bytes=0,
        rewrite_s=round(rewriting, 1) if redis_url is not None else None,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Hub ingest throughput/latency against a bare aiohttp handler."
    )
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per target (bare, hub alternate)")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="the hub's ALERTHUB_LOG_LEVEL (info logs one line per request, as in production)",
    )
    add_standard_args(
        parser,
        "1 run per target of 0.5 s warm-up + 2 s on 16 connections; exit status judges errors only",
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin servers and client to cores"
    )
    parser.add_argument(
        "--redis-transport",
        choices=("unix", "tcp"),
        default="unix",
        help="how the hub reaches redis-server: a Unix socket (as the embedded Redis of "
        "`alerthub serve` does) or TCP on loopback",
    )
    parser.add_argument(
        "--redis-cpu",
        choices=("server", "client", "free"),
        default="client",
        help="where redis-server runs when pinning: the client's core (default: Redis is a "
        "process of its own, and the hub's figure should be the hub's), the server's (the hub "
        "then also pays for its store), or any (Linux then pulls Redis onto the hub's core, "
        "which wakes it through the socket)",
    )
    parser.add_argument(
        "--store",
        choices=("fresh", "shared"),
        default="fresh",
        help="fresh (default): each hub run gets a new redis-server and hub process, so runs are "
        "alike; shared: one store for all runs, so later runs see every earlier alert and the "
        "append-only file's rewrites of the whole store",
    )
    parser.add_argument(
        "--generator",
        choices=("python", "wrk"),
        default="python",
        help="the load generator: python (default; an aiohttp client in this process, which "
        "spends ~150 us of its core per request and so caps the bare handler) or wrk (C, "
        "benchmarks/kit/wrk_post.lua; needs wrk on PATH), which lets the bare handler run at its "
        "own pace; with wrk the p99 is not split by rewrites",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup, args.duration = 1, 0.5, 2.0
        args.connections = min(args.connections, 16)
    if args.connections < 1 or args.runs < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--connections and --runs must be >= 1, --duration > 0, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.generator == "wrk":
        find_wrk()  # refuse at once, not after the servers have started
    stop_on_sigterm()
    started_at = dt.datetime.now(dt.UTC)
    machine_info = machine()  # before this process pins itself to the client's cores
    pinning = plan_pinning(args.pin, args.redis_cpu)
    bodies = AlertBodies()
    body_bytes = len(bodies.next())
    runs: list[RunResult] = []
    cleanup: list[Callable[[], None]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="alerthub-bench-") as tmp_name:
            tmp = Path(tmp_name)
            bodies.write_template(tmp)
            try:
                with affinity(pinning.server):
                    bare_argv = [sys.executable, "-m", "benchmarks.bare_server"]
                    bare = start_server("bare", bare_argv, python_env(), tmp)
                    cleanup.append(bare.stop)
                bare.wait_ready("/healthz")
                stack: HubStack | None = None
                if pinning.client is not None:
                    os.sched_setaffinity(0, pinning.client)
                for i in range(1, args.runs + 1):
                    if stack is None or args.store == "fresh":
                        if stack is not None:
                            stack.stop()
                        stack = HubStack.start(tmp / f"store-{i}", args, pinning)
                        cleanup.append(stack.stop)
                    for target, server, tok, rpid in (
                        ("bare", bare, None, None),
                        ("hub", stack.hub, stack.token, stack.stack.redis_pid),
                    ):
                        url = stack.stack.store.url if target == "hub" else None
                        result = measure(target, i, server, tok, bodies, args, rpid, url)
                        runs.append(result)
                        print(
                            f"  {target}{i}: {result.alerts_per_s:.0f} alerts/s, "
                            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                            f"errors {result.errors}",
                            flush=True,
                        )
                        if server.process.poll() is not None:
                            raise RuntimeError(f"{target} died:\n{server.log_tail()}")
                aof_bytes = sum(f.stat().st_size for f in tmp.rglob("*.aof") if f.is_file())
            finally:
                for stop in reversed(cleanup):
                    with contextlib.suppress(Exception):
                        stop()
    except KeyboardInterrupt:
        print("interrupted; servers stopped, temporary folder removed", file=sys.stderr)
        return 130

    report = build_report(
        args,
        runs,
        pinning,
        body_bytes,
        aof_bytes,
        started_at=started_at.isoformat(timespec="seconds"),
        machine=machine_info,
    )
    out = write_json(report, args.out, "ingest", utc_stamp(started_at))
    print(summary_text(report))
    print(f"wrote {out}")
    if args.quick:  # a smoke run judges what was lost, not the speed
        goals = report["goals"]
        return 0 if goals["errors"] == 0 and goals["hub_answers_not_created"] == 0 else 1
    return 0 if report["goals"]["all_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

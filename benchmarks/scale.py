"""Scale-out figures of issue 19: `serve --workers 2` against `--workers 1`, and how well the
`api` / `delivery` roles keep a fan-out load away from posts.

    .venv/bin/python benchmarks/scale.py [--quick] [--runs 3] [--part ingest|isolation|both]

ingest: a fresh redis-server (append-only file on, fsync every second) and one `alerthub serve
--workers N` on it; this process posts unique valid alerts on --connections keep-alive
connections for a warm-up and a measured window (benchmarks/ingest.py's load generator). Runs
alternate workers=1, workers=2, ... so each figure has its baseline from the same minute; the
medians over --runs are compared. CPU is counted for the arbiter and its workers together, for
Redis, and for this client, from /proc, over the measured window.

isolation: POST latency of alerts posted at --rate per second (open loop: each is sent on time,
whatever the earlier ones wait for), measured from when it was due to its answer, in four
set-ups, each on a fresh Redis:
- idle:     one `--role all` process, no subscriptions;
- all:      one `--role all` process, --streams pull subscriptions each read by an SSE stream from
            that process (benchmarks/fanout_receivers.py, in two processes of their own);
- split:    `--role api` (posts and the streams) + `--role delivery` (fan-out);
- split3:   `--role api` for posts, another `--role api` for the streams, `--role delivery`.
The figure is each set-up's p99 over idle's p99 (the issue's goal for split roles: at most 3x).

Nothing is pinned: the workers and roles are there to use more than one core, and on this
project's 2-core VM the load generator, the SSE readers and Redis share the same two. The load
average is recorded before and after. Writes benchmarks/results/scale-<UTC time>.json and prints
a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
from fanout import Scenario, publish, register, run_async, start_sse_receivers
from ingest import BOOTSTRAP_TOKEN as INGEST_TOKEN
from ingest import AlertBodies, Server, drive, machine, percentile, register_node, start_server

from hub.store.embedded import RedisServer, start_redis_server

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BOOTSTRAP_TOKEN = "bench-operator-fanout"  # fanout.register's calls use this one
ISOLATION_GOAL = 3.0
SETUPS: dict[str, list[tuple[str, str]]] = {
    # (name, role) of each hub process; "posts" takes the posts, "streams" the SSE streams.
    "idle": [("posts", "all")],
    "all": [("posts", "all")],
    "split": [("posts", "api"), ("delivery", "delivery")],
    "split3": [("posts", "api"), ("streams", "api"), ("delivery", "delivery")],
}


def env_for(redis_url: str, role: str, token: str = BOOTSTRAP_TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTHUB_")}
    env.update(
        ALERTHUB_REDIS_URL=redis_url,
        ALERTHUB_BOOTSTRAP_TOKEN=token,
        ALERTHUB_RATE_LIMIT_PER_MINUTE=str(10**9),
        ALERTHUB_MAX_SSE_PER_NODE="100000",
        ALERTHUB_LOG_LEVEL="warning",
        ALERTHUB_ROLE=role,
    )
    return env


def hub_cpu_s(server: Server) -> float:
    """User + system CPU seconds of a hub process and its children (gunicorn's workers), the
    children's own and those of children that ended."""
    total = 0.0
    procs = [psutil.Process(server.process.pid)]
    with contextlib.suppress(psutil.Error):
        procs += procs[0].children(recursive=True)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


def wait_for_workers(server: Server, count: int, within: float = 60.0) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        children = psutil.Process(server.process.pid).children()
        pids = [c.pid for c in children if "hub" in " ".join(c.cmdline())]
        if len(pids) == count:
            return pids
        time.sleep(0.1)
    raise RuntimeError(f"{server.name}: {count} workers did not start:\n{server.log_tail()}")


def settle(servers: list[Server], within: float = 60.0, quiet: float = 0.1) -> None:
    """Until the hub processes use under `quiet` of a core: each worker loads the claim
    similarity dictionaries in a thread after it is ready (1-3 s of CPU), which would otherwise
    fall into the measured window, twice with two workers."""
    deadline = time.monotonic() + within
    last = sum(hub_cpu_s(s) for s in servers)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(hub_cpu_s(s) for s in servers)
        if now - last < quiet * 0.5:
            return
        last = now


@contextlib.contextmanager
def redis_in(folder: Path) -> Iterator[RedisServer]:
    store = start_redis_server(folder / "redis")
    try:
        yield store
    finally:
        store.stop()


@contextlib.contextmanager
def hubs_in(
    folder: Path,
    redis_url: str,
    plan: list[tuple[str, str]],
    workers: int = 1,
    token: str = BOOTSTRAP_TOKEN,
) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for name, role in plan:
            argv = [sys.executable, "-m", "hub", "serve", "--workers", str(workers)]
            server = start_server(name, argv, env_for(redis_url, role, token), folder)
            started[name] = server
            server.wait_ready("/readyz", timeout=60)
            if workers > 1:
                wait_for_workers(server, workers)
        yield started
    finally:
        for server in started.values():
            server.stop()


# --- ingest -------------------------------------------------------------------------------------


def ingest_run(folder: Path, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    folder.mkdir(parents=True)
    with (
        redis_in(folder) as store,
        hubs_in(folder, store.url, [("hub", "all")], workers, INGEST_TOKEN) as hubs,
    ):
        hub = hubs["hub"]
        token = run_async(register_node(hub.base_url))
        settle([hub])
        assert store.process is not None
        redis_pid = store.process.pid
        before = (hub_cpu_s(hub), psutil.Process(redis_pid).cpu_times())
        started = time.monotonic()
        latencies, statuses, not_created, cpu, _ = run_async(
            drive(
                f"{hub.base_url}/v1/alerts",
                token,
                AlertBodies(),
                args.connections,
                args.warmup,
                args.duration,
                watch={},
            )
        )
        elapsed = time.monotonic() - started
        hub_cpu = hub_cpu_s(hub) - before[0]
        redis_times = psutil.Process(redis_pid).cpu_times()
        redis_cpu = redis_times.user + redis_times.system - before[1].user - before[1].system
    count = len(latencies)
    ordered = sorted(lat for _, lat in latencies)
    # The hub's CPU is counted over warm-up and window together: scale it to the window.
    share = args.duration / elapsed
    return {
        "workers": workers,
        "alerts_per_s": round(count / args.duration, 1),
        "p50_ms": round(1000 * percentile(ordered, 0.5), 2),
        "p99_ms": round(1000 * percentile(ordered, 0.99), 2),
        "count": count,
        "errors": sum(n for s, n in statuses.items() if not s.startswith("2")),
        "not_created": not_created,
        "hub_cpu_ms_per_alert": round(1000 * hub_cpu * share / count, 3) if count else None,
        "redis_cpu_ms_per_alert": round(1000 * redis_cpu * share / count, 3) if count else None,
        "hub_cpu_pct": round(100 * hub_cpu / elapsed, 1),
        "client_cpu_pct": round(100 * cpu["client"] / args.duration, 1),
    }


# --- isolation ----------------------------------------------------------------------------------


def isolation_run(folder: Path, setup: str, args: argparse.Namespace) -> dict[str, Any]:
    folder.mkdir(parents=True)
    streams = 0 if setup == "idle" else args.streams
    scenario = Scenario("sse", max(streams, 1), args.rate, args.duration, args.warmup, 2)
    with redis_in(folder) as store, hubs_in(folder, store.url, SETUPS[setup]) as hubs:
        posts = hubs["posts"]
        stream_base = (hubs.get("streams") or posts).base_url
        subs = run_async(register(posts.base_url, scenario, lambda _i: {"type": "pull"}))
        receivers = start_sse_receivers(folder, scenario, stream_base, subs) if streams else None
        try:
            settle(list(hubs.values()), quiet=0.3)  # SSE heartbeats keep a streams process busy
            before = {name: hub_cpu_s(s) for name, s in hubs.items()}
            started = time.monotonic()
            published = run_async(publish(posts.base_url, subs.publisher_token, scenario))
            elapsed = time.monotonic() - started
            cpu = {name: hub_cpu_s(s) - before[name] for name, s in hubs.items()}
            received = drained(receivers, len(published) * streams) if receivers else 0
            cpu_drained = sum(hub_cpu_s(s) - before[name] for name, s in hubs.items())
        finally:
            if receivers is not None:
                receivers.stop()
    measured = [p for p in published if p.measured]
    ok = sorted(p.answered - p.due for p in measured if p.status == "201")
    alerts = len(published)
    return {
        "setup": setup,
        "streams": streams,
        "posts_measured": len(measured),
        "errors": sum(1 for p in measured if p.status != "201"),
        "p50_ms": round(1000 * percentile(ok, 0.5), 2),
        "p99_ms": round(1000 * percentile(ok, 0.99), 2),
        "max_ms": round(1000 * ok[-1], 2) if ok else None,
        "events_received": received,
        "events_expected": alerts * streams,
        "cpu_pct": {name: round(100 * s / elapsed, 1) for name, s in cpu.items()},
        # Hub CPU (every process) per alert, and per event delivered to a stream.
        "hub_cpu_ms_per_alert": round(1000 * sum(cpu.values()) / alerts, 3),
        "hub_cpu_ms_per_event": round(1000 * cpu_drained / received, 4) if received else None,
    }


def drained(receivers: Any, expected: int, idle_s: float = 3.0, within_s: float = 60.0) -> int:
    """The events the streams received once all `expected` arrived, or none arrived for
    `idle_s`, or `within_s` passed."""
    deadline = time.monotonic() + within_s
    best, moved_at = -1, time.monotonic()
    while True:
        count = receivers.count()
        if count > best:
            best, moved_at = count, time.monotonic()
        if count >= expected or time.monotonic() - moved_at > idle_s:
            return count
        if time.monotonic() > deadline:
            return count
        time.sleep(0.25)


# --- report -------------------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def summarise(report: dict[str, Any]) -> str:
    lines = [f"load average before {report['loadavg_before']}, after {report['loadavg_after']}"]
    ingest = report.get("ingest")
    if ingest:
        for workers, m in ingest["medians"].items():
            lines.append(
                f"ingest workers={workers}: {m['alerts_per_s']} alerts/s, p99 {m['p99_ms']} ms, "
                f"hub {m['hub_cpu_ms_per_alert']} CPU-ms/alert, "
                f"redis {m['redis_cpu_ms_per_alert']} CPU-ms/alert"
            )
        lines.append(f"ingest workers=2 / workers=1: {ingest['ratio_2_to_1']}")
    iso = report.get("isolation")
    if iso:
        for setup, m in iso["medians"].items():
            lines.append(
                f"isolation {setup}: POST p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms "
                f"({iso['p99_over_idle'][setup]}x idle), hub {m['hub_cpu_ms_per_event']} "
                "CPU-ms per stream event"
            )
    return "\n".join(lines)


def medians(runs: list[dict[str, Any]], by: str, keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for value in dict.fromkeys(r[by] for r in runs):
        mine = [r for r in runs if r[by] == value]
        out[str(value)] = {key: median_of(mine, key) for key in keys}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("ingest", "isolation", "both"), default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="short windows, 200 streams, 1 run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5.0, help="isolation: alerts per second")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.streams = 1, min(args.streams, 200)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="alerthub-scale-") as tmp:
        root = Path(tmp)
        if args.part in ("ingest", "both"):
            args.warmup, args.duration = (2.0, 5.0) if args.quick else (3.0, 15.0)
            runs = [
                ingest_run(root / f"ingest-{n}-w{w}", w, args)
                for n in range(args.runs)
                for w in (1, 2)
            ]
            keys = ("alerts_per_s", "p50_ms", "p99_ms", "hub_cpu_ms_per_alert",
                    "redis_cpu_ms_per_alert", "hub_cpu_pct", "client_cpu_pct")  # fmt: skip
            m = medians(runs, "workers", keys)
            report["ingest"] = {
                "runs": runs,
                "medians": m,
                "ratio_2_to_1": round(m["2"]["alerts_per_s"] / m["1"]["alerts_per_s"], 3),
            }
        if args.part in ("isolation", "both"):
            args.warmup, args.duration = (2.0, 10.0) if args.quick else (5.0, 30.0)
            runs = [
                isolation_run(root / f"iso-{n}-{s}", s, args)
                for n in range(args.runs)
                for s in SETUPS
            ]
            keys = ("p50_ms", "p99_ms", "max_ms", "hub_cpu_ms_per_alert", "hub_cpu_ms_per_event")
            m = medians(runs, "setup", keys)
            idle = m["idle"]["p99_ms"]
            report["isolation"] = {
                "runs": runs,
                "medians": m,
                "p99_over_idle": {s: round(v["p99_ms"] / idle, 2) for s, v in m.items()},
                "goal_split_over_idle": ISOLATION_GOAL,
            }
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out = args.out or RESULTS / f"scale-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(summarise(report))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scale-out figures of issue 19: `serve --workers 2` against `--workers 1`, and how well the
`api` / `delivery` roles keep a fan-out load away from posts.

    .venv/bin/python -m benchmarks.scale [--quick] [--runs 3] [--part ingest|isolation|both]

ingest: a fresh redis-server (append-only file on, fsync every second) and one `alerthub serve
--workers N` on it; this process posts unique valid alerts on --connections keep-alive
connections for a warm-up and a measured window (kit/load.py's closed loop). Runs
alternate workers=1, workers=2, ... so each figure has its baseline from the same minute; the
medians over --runs are compared. CPU is counted for the arbiter and its workers together, for
Redis, and for this client, from /proc, over the measured window.

isolation: POST latency of alerts posted at --rate per second (open loop: each is sent on time,
whatever the earlier ones wait for), measured from when it was due to its answer, in four
set-ups, each on a fresh Redis:
- idle:     one `--role all` process, no subscriptions;
- all:      one `--role all` process, --streams pull subscriptions each read by an SSE stream from
            that process (benchmarks/kit/receivers.py, in two processes of their own);
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

if not __package__:  # run as a file (python benchmarks/scale.py): the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fanout import BOOTSTRAP_TOKEN, register
from benchmarks.fanout_report import Scenario
from benchmarks.kit.load import AlertBodies, closed_loop, publish, register_node
from benchmarks.kit.measurement import cpu_seconds, percentile
from benchmarks.kit.processes import HUB_ARGV, Server, hub_env, run_async, start_server
from benchmarks.kit.receiver_control import Receivers, start_sse_receivers
from benchmarks.kit.report import add_standard_args, hub_code, machine, utc_stamp, write_json
from hub.store.embedded import RedisServer, start_redis_server

ISOLATION_GOAL = 3.0
SETUPS: dict[str, list[tuple[str, str]]] = {
    # (name, role) of each hub process; "posts" takes the posts, "streams" the SSE streams.
    "idle": [("posts", "all")],
    "all": [("posts", "all")],
    "split": [("posts", "api"), ("delivery", "delivery")],
    "split3": [("posts", "api"), ("streams", "api"), ("delivery", "delivery")],
}


def env_for(redis_url: str, role: str) -> dict[str, str]:
    # The token fanout.register calls with; each subscriber node reads up to 100 streams at once.
    return hub_env(
        redis_url,
        BOOTSTRAP_TOKEN,
        "warning",
        ALERTHUB_MAX_SSE_PER_NODE="1000",
        ALERTHUB_ROLE=role,
    )


def family(pid: int) -> list[int]:
    """`pid` and its children (gunicorn's workers; the hub's own redis-server, if embedded)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(int(c) for c in children)]


def hub_cpu_s(server: Server) -> float:
    """User + system CPU seconds of a hub process and its live children (gunicorn's workers)."""
    total = 0.0
    for pid in family(server.process.pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def wait_for_workers(server: Server, count: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if len(family(server.process.pid)) == count + 1:
            return
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


def start_hub(folder: Path, name: str, redis_url: str, role: str, workers: int) -> Server:
    """A hub process on a free port, ready; a port another process took between the free-port
    probe and the listen (this VM is shared) is retried on another."""
    for attempt in range(3):
        argv = [*HUB_ARGV, "--workers", str(workers)]
        server = start_server(name, argv, env_for(redis_url, role), folder)
        try:
            server.wait_ready("/readyz", timeout=60)
        except RuntimeError:
            if attempt < 2 and "Address already in use" in server.log_tail():
                continue
            raise
        if workers > 1:
            wait_for_workers(server, workers)
        return server
    raise AssertionError("unreachable")


@contextlib.contextmanager
def hubs_in(
    folder: Path, redis_url: str, plan: list[tuple[str, str]], workers: int = 1
) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for name, role in plan:
            started[name] = start_hub(folder, name, redis_url, role, workers)
        yield started
    finally:
        for server in started.values():
            server.stop()


# --- ingest -------------------------------------------------------------------------------------


def ingest_run(folder: Path, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    folder.mkdir(parents=True)
    with (
        redis_in(folder) as store,
        hubs_in(folder, store.url, [("hub", "all")], workers) as hubs,
    ):
        hub = hubs["hub"]
        token = run_async(register_node(hub.base_url, BOOTSTRAP_TOKEN))
        settle([hub])
        assert store.process is not None
        redis_pid = store.process.pid
        before = (hub_cpu_s(hub), cpu_seconds(redis_pid))
        started = time.monotonic()
        run = run_async(
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
        elapsed = time.monotonic() - started
        hub_cpu = hub_cpu_s(hub) - before[0]
        redis_cpu = cpu_seconds(redis_pid) - before[1]
    latencies, statuses, not_created, cpu = run.latencies, run.statuses, run.not_created, run.cpu
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
        receivers = (
            start_sse_receivers(folder, scenario.procs, stream_base, subs.sub_ids, subs.tokens)
            if streams
            else None
        )
        try:
            settle(list(hubs.values()), quiet=0.3)  # SSE heartbeats keep a streams process busy
            before = {name: hub_cpu_s(s) for name, s in hubs.items()}
            started = time.monotonic()
            published = run_async(
                publish(posts.base_url, subs.publisher_token, args.rate, args.warmup, args.duration)
            )
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


def drained(
    receivers: Receivers, expected: int, idle_s: float = 3.0, within_s: float = 60.0
) -> int:
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
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5.0, help="isolation: alerts per second")
    add_standard_args(parser, "one run of each part, short windows, 100 streams")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.streams = 1, min(args.streams, 100)
    return args


def lost_nothing(report: dict[str, Any]) -> bool:
    """Every post answered 2xx `created`, every event reached every stream."""
    ingest = report.get("ingest", {}).get("runs", [])
    isolation = report.get("isolation", {}).get("runs", [])
    return all(r["count"] and not r["errors"] and not r["not_created"] for r in ingest) and all(
        not r["errors"] and r["events_received"] == r["events_expected"] for r in isolation
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "hub_code": hub_code(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="alerthub-scale-") as tmp:
        root = Path(tmp)
        if args.part in ("ingest", "both"):
            args.warmup, args.duration = (1.0, 3.0) if args.quick else (3.0, 15.0)
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
            args.warmup, args.duration = (1.0, 4.0) if args.quick else (5.0, 30.0)
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
    out = write_json(report, args.out, "scale", utc_stamp(started_at))
    print(summarise(report))
    print(f"wrote {out}")
    return 0 if lost_nothing(report) else 1


if __name__ == "__main__":
    raise SystemExit(main())

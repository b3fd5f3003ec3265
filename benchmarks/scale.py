"""Scale-out figures of issue 19: `serve --workers 2` against `--workers 1`, and how well the
`api` / `delivery` roles keep a fan-out load away from posts.

    .venv/bin/python -m benchmarks.scale [--quick] [--runs 3]
        [--part ingest|isolation|fanout|fanout-live|both|all]   (both: ingest and isolation;
        all: every part, fanout-live's 4 minutes on top of the others' 20)

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

fanout: feed appends per second, draining a backlog. On a fresh Redis one `--role api` process
takes --subs pull subscriptions (empty filters, 100 per government node: every alert matches
every one) and --alerts alerts while no delivery process runs; then the set-up's `--role
delivery` processes start together, and the window runs from when they hold the shards as
members.py splits them (their start and the hand-over of shards are left out) until every feed
holds every alert (sum of XLEN over the feeds), then /v1/status must say lag 0 and no shard
behind. Appends/s = feed entries added in the window / its length; CPU (delivery processes,
Redis, and the api process that answers the status) per append, over the window. Set-ups, in
turn in each run: shards1-d1 (ALERTHUB_FANOUT_SHARDS=1, one process: the single-leader fan-out
before shards, the baseline), d1 (64 shards, one process), d2 (64 shards, two processes); the
medians over --runs, and the ratios d1 / shards1-d1 and d2 / d1. A feed short of an alert, or
shards not all held, fails the run (exit 1).

fanout-live: the CPU fan-out costs at a live post rate (--rate, default 20 alerts/s, for
--seconds, default 15) to --subs (default 100) pull subscriptions, with 1, 8 and 64 shards in one
`--role all` process: every event wakes every shard. Hub and Redis CPU as shares of one core,
the medians, and the ratios shards8 / shards1 and shards64 / shards1; see scale_live.py. A feed
short of an alert fails the run (exit 1).

--rate and --subs default per part (isolation 5 alerts/s; fanout 1,000 subscriptions); given,
they apply to every part that takes them.

Nothing is pinned: the workers and roles are there to use more than one core, and on this
project's 2-core VM the load generator, the SSE readers and Redis share the same two. The load
average is recorded before and after. Writes benchmarks/results/scale-<UTC time>.json and prints
a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

if not __package__:  # run as a file (python benchmarks/scale.py): the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fanout import BOOTSTRAP_TOKEN, register
from benchmarks.fanout_report import Scenario
from benchmarks.kit.load import AlertBodies, closed_loop, publish, register_node
from benchmarks.kit.measurement import cpu_seconds, percentile
from benchmarks.kit.processes import HUB_ARGV, Server, run_async, start_server
from benchmarks.kit.receiver_control import Receivers, start_sse_receivers
from benchmarks.kit.report import add_standard_args, hub_code, machine, utc_stamp, write_json
from benchmarks.scale_live import fanout_live_part, live_complete, live_summary
from benchmarks.scale_shared import (
    FeedTotal,
    env_for,
    hub_cpu_s,
    hubs_in,
    medians,
    operator_get,
    ratio,
    redis_in,
    settle,
    shards_held,
    wait_until,
)
from hub.store.embedded import RedisServer

ISOLATION_GOAL = 3.0
SETUPS: dict[str, list[tuple[str, str]]] = {
    # (name, role) of each hub process; "posts" takes the posts, "streams" the SSE streams.
    "idle": [("posts", "all")],
    "all": [("posts", "all")],
    "split": [("posts", "api"), ("delivery", "delivery")],
    "split3": [("posts", "api"), ("streams", "api"), ("delivery", "delivery")],
}


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


# --- fanout -------------------------------------------------------------------------------------

FANOUT_SETUPS: dict[str, tuple[int, int]] = {
    # name: (ALERTHUB_FANOUT_SHARDS, delivery processes)
    "shards1-d1": (1, 1),  # one shard, one process: the single-leader fan-out, the baseline
    "d1": (64, 1),
    "d2": (64, 2),
}
BACKLOG_POST_RATE = 100.0  # alerts/s, while no delivery process runs: only the backlog counts


def fanned_out(api_url: str) -> bool:
    """Whether `/v1/status` says every shard has fanned out the whole event log."""
    fanout = orjson.loads(operator_get(f"{api_url}/v1/status"))["fanout"]
    return bool(fanout["lag"] == 0 and fanout["shards_behind"] == 0)


def split_as_planned(servers: list[Server], shards: int) -> bool:
    """Whether the delivery processes hold all the shards, their counts differing by at most
    one (members.py's split), i.e. every process has joined and taken its share."""
    held = [shards_held(s) for s in servers]
    return sum(held) == shards and max(held) - min(held) <= 1


@contextlib.contextmanager
def delivery_processes(
    folder: Path, redis_url: str, count: int, shards: int
) -> Iterator[list[Server]]:
    """`count` `--role delivery` processes, spawned together so that none fans out every shard
    for long before the others join; not waited on (the fan-out starts before /readyz)."""
    env = env_for(redis_url, "delivery", ALERTHUB_FANOUT_SHARDS=str(shards))
    argv = [*HUB_ARGV, "--workers", "1"]
    started = [start_server(f"delivery{n}", argv, env, folder) for n in range(count)]
    try:
        yield started
    finally:
        for server in started:
            server.stop()


@dataclasses.dataclass
class Drain:
    """A backlog's fan-out by the delivery processes, timed from when every process held its
    share of the shards to when every feed had every alert."""

    seconds: float
    appended: int  # feed entries added in those seconds
    total: int  # feed entries at the end
    cpu_s: dict[str, float]  # CPU seconds in those seconds: "delivery" (all), "redis", "api"
    spawn_to_first_s: float  # processes started -> first feed entry
    first_to_split_s: float  # first feed entry -> every process holds its share
    spawn_to_done_s: float
    shards_held: list[int]  # per delivery process, at the end
    status_caught_up: bool  # /v1/status: fan-out lag 0, no shard behind


def cpu_now(deliveries: list[Server], redis_pid: int, api: Server) -> dict[str, float]:
    return {
        "delivery": sum(hub_cpu_s(s) for s in deliveries),
        "redis": cpu_seconds(redis_pid),
        "api": hub_cpu_s(api),
    }


def drain_backlog(
    folder: Path, api: Server, store: RedisServer, feeds: FeedTotal, setup: str, expected: int
) -> Drain:
    """Start the set-up's delivery processes on the backlog and time its fan-out. The window
    leaves out their start (imports, joining, taking the shards' leases): it starts once they
    hold the shards as split for good, or, if the backlog is gone first (--quick), is empty."""
    shards, count = FANOUT_SETUPS[setup]
    assert store.process is not None
    redis_pid, within = store.process.pid, 600.0

    def all_in() -> bool:
        return feeds.read() >= expected

    status_checked = [0.0]

    def finished() -> bool:
        """Every feed entry in, or the hub says the fan-out caught up without them (a loss,
        which the run reports): the status is asked at most once a second."""
        if all_in():
            return True
        if time.monotonic() - status_checked[0] < 1.0:
            return False
        status_checked[0] = time.monotonic()
        return fanned_out(api.base_url)

    with delivery_processes(folder, store.url, count, shards) as servers:
        spawned = time.monotonic()
        first = wait_until(lambda: feeds.read() > 0, within, f"{setup}: a first feed entry")
        split = wait_until(
            lambda: finished() or split_as_planned(servers, shards), within, f"{setup}: the split"
        )
        appended_before, cpu_before = feeds.read(), cpu_now(servers, redis_pid, api)
        done = wait_until(finished, within, f"{setup}: the fan-out")
        cpu_after = cpu_now(servers, redis_pid, api)
        total = feeds.read()
        caught_up = wait_until(lambda: fanned_out(api.base_url), 30.0, f"{setup}: status lag 0")
        held = [shards_held(s) for s in servers]
    return Drain(
        seconds=done - split,
        appended=total - appended_before,
        total=total,
        cpu_s={k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        spawn_to_first_s=first - spawned,
        first_to_split_s=split - first,
        spawn_to_done_s=done - spawned,
        shards_held=held,
        status_caught_up=caught_up > 0,
    )


def fanout_run(folder: Path, setup: str, args: argparse.Namespace) -> dict[str, Any]:
    """One set-up on a fresh Redis: an `api` process takes --subs pull subscriptions (empty
    filters, government nodes: every alert matches every one) and a backlog of --alerts
    alerts while no delivery process runs; then the set-up's delivery processes fan it out."""
    folder.mkdir(parents=True)
    shards = FANOUT_SETUPS[setup][0]
    scenario = Scenario("sse", args.subs, BACKLOG_POST_RATE, 0.0, 0.0, 1)
    with (
        redis_in(folder) as store,
        hubs_in(folder, store.url, [("api", "api")], ALERTHUB_FANOUT_SHARDS=str(shards)) as hubs,
    ):
        api = hubs["api"]
        subs = run_async(register(api.base_url, scenario, lambda _i: {"type": "pull"}))
        seconds = args.alerts / BACKLOG_POST_RATE
        posted = run_async(
            publish(api.base_url, subs.publisher_token, BACKLOG_POST_RATE, 0.0, seconds)
        )
        created = sum(1 for p in posted if p.status == "201" and p.created)
        feeds = FeedTotal(store.url, subs.sub_ids)
        try:
            drain = drain_backlog(folder, api, store, feeds, setup, created * args.subs)
        finally:
            feeds.close()
    return fanout_figures(setup, len(posted), created, args.subs, drain)


def fanout_figures(
    setup: str, posted: int, created: int, subs: int, drain: Drain
) -> dict[str, Any]:
    shards, count = FANOUT_SETUPS[setup]
    timed = drain.appended if drain.seconds > 0 else 0

    def per_append(cpu: float) -> float | None:
        return round(1e6 * cpu / timed, 2) if timed else None

    def share(cpu: float) -> float | None:
        return round(100 * cpu / drain.seconds, 1) if timed else None

    return {
        "setup": setup,
        "shards": shards,
        "delivery_processes": count,
        "subscriptions": subs,
        "alerts_posted": posted,
        "alerts_created": created,
        "appends_expected": created * subs,
        "appends_total": drain.total,
        "appends_missing": created * subs - drain.total,
        "appends_timed": timed,
        "drain_s": round(drain.seconds, 3),
        "appends_per_s": round(timed / drain.seconds, 1) if timed else None,
        "appends_per_s_from_spawn": round(drain.total / drain.spawn_to_done_s, 1),
        "spawn_to_first_append_s": round(drain.spawn_to_first_s, 3),
        "first_append_to_split_s": round(drain.first_to_split_s, 3),
        "delivery_cpu_us_per_append": per_append(drain.cpu_s["delivery"]),
        "redis_cpu_us_per_append": per_append(drain.cpu_s["redis"]),
        "api_cpu_us_per_append": per_append(drain.cpu_s["api"]),
        "delivery_cpu_pct": share(drain.cpu_s["delivery"]),
        "redis_cpu_pct": share(drain.cpu_s["redis"]),
        "shards_held": drain.shards_held,
        "status_caught_up": drain.status_caught_up,
    }


# --- report -------------------------------------------------------------------------------------


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
    fanout = report.get("fanout")
    if fanout:
        for setup, m in fanout["medians"].items():
            lines.append(
                f"fanout {setup}: {m['appends_per_s']} appends/s, delivery "
                f"{m['delivery_cpu_us_per_append']} CPU-us/append, redis "
                f"{m['redis_cpu_us_per_append']} CPU-us/append"
            )
        lines.append(f"fanout ratios: {fanout['ratios']}")
    if "fanout-live" in report:
        lines.extend(live_summary(report["fanout-live"]))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part",
        choices=("ingest", "isolation", "fanout", "fanout-live", "both", "all"),
        default="both",
        help="both: ingest and isolation; all: every part",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument(
        "--rate", type=float, help="alerts per second; isolation: 5, fanout-live: 20"
    )
    parser.add_argument(
        "--subs", type=int, help="pull subscriptions; fanout: 1000, fanout-live: 100"
    )
    parser.add_argument("--alerts", type=int, default=300, help="fanout: alerts in the backlog")
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="fanout-live: the measured window"
    )
    add_standard_args(
        parser,
        "one run of each part, short windows, 100 streams; fanout: 30 alerts to 100; "
        "fanout-live: 2 s to 10",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.streams = 1, min(args.streams, 100)
        args.alerts = min(args.alerts, 30)
    return args


PART_DEFAULTS: dict[str, dict[str, float]] = {
    "isolation": {"rate": 5.0},
    "fanout": {"subs": 1000},
    "fanout-live": {"rate": 20.0, "subs": 100},
}
QUICK_SUBS = {"fanout": 100, "fanout-live": 10}


def for_part(args: argparse.Namespace, part: str) -> argparse.Namespace:
    """`args` with the part's defaults for --rate and --subs where they were not given (the
    parts want different ones), --subs capped under --quick."""
    out = argparse.Namespace(**vars(args))
    for key, value in PART_DEFAULTS.get(part, {}).items():
        if getattr(out, key) is None:
            setattr(out, key, value)
    if args.quick and part in QUICK_SUBS:
        out.subs = min(out.subs, QUICK_SUBS[part])
    return out


def lost_nothing(report: dict[str, Any]) -> bool:
    """Every post answered 2xx `created`, every event reached every stream."""
    ingest = report.get("ingest", {}).get("runs", [])
    isolation = report.get("isolation", {}).get("runs", [])
    fanout = report.get("fanout", {}).get("runs", [])
    live = report.get("fanout-live", {}).get("runs", [])
    return (
        all(r["count"] and not r["errors"] and not r["not_created"] for r in ingest)
        and all(not r["errors"] and r["events_received"] == r["events_expected"] for r in isolation)
        and all(fanout_complete(r) for r in fanout)
        and all(live_complete(r) for r in live)
    )


def fanout_complete(run: dict[str, Any]) -> bool:
    """Every alert created, each in every feed once; every shard held by one process."""
    return (
        run["alerts_created"] == run["alerts_posted"]
        and run["appends_total"] == run["appends_expected"]
        and sum(run["shards_held"]) == run["shards"]
        and run["status_caught_up"]
    )


def fanout_part(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for n in range(args.runs):
        for setup in FANOUT_SETUPS:
            runs.append(fanout_run(root / f"fanout-{n}-{setup}", setup, args))
            runs[-1]["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    keys = ("appends_per_s", "appends_per_s_from_spawn", "drain_s",
            "delivery_cpu_us_per_append", "redis_cpu_us_per_append", "api_cpu_us_per_append",
            "delivery_cpu_pct", "redis_cpu_pct")  # fmt: skip
    m = medians(runs, "setup", keys)
    return {
        "runs": runs,
        "medians": m,
        "ratios": {
            "d1_over_shards1_d1": ratio(m["d1"], m["shards1-d1"], "appends_per_s"),
            "d2_over_d1": ratio(m["d2"], m["d1"], "appends_per_s"),
        },
    }


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
        if args.part in ("ingest", "both", "all"):
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
        if args.part in ("isolation", "both", "all"):
            iso = for_part(args, "isolation")
            iso.warmup, iso.duration = (1.0, 4.0) if args.quick else (5.0, 30.0)
            runs = [
                isolation_run(root / f"iso-{n}-{s}", s, iso)
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
        if args.part in ("fanout", "all"):
            report["fanout"] = fanout_part(root, for_part(args, "fanout"))
        if args.part in ("fanout-live", "all"):
            report["fanout-live"] = fanout_live_part(root, for_part(args, "fanout-live"))
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out = write_json(report, args.out, "scale", utc_stamp(started_at))
    print(summarise(report))
    print(f"wrote {out}")
    return 0 if lost_nothing(report) else 1


if __name__ == "__main__":
    raise SystemExit(main())

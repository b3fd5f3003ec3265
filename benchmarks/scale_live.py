"""The `fanout-live` part of benchmarks/scale.py: the CPU that fan-out costs at a live post rate,
with 1, 8 and 64 fan-out shards in one `--role all` process.

Every shard reads the event log through a consumer group of its own, so each new event wakes
every shard the process holds: while a backlog drains (the `fanout` part) the wake-ups are
shared by many events, at a few alerts per second each event pays for all of them. Per run, in
turn (so that each figure has its baseline from the same minute), on a fresh Redis each:
shards1, shards8 and shards64 (ALERTHUB_FANOUT_SHARDS). The process takes --subs pull
subscriptions (empty filters, government nodes: every alert matches every one) and holds every
shard; its CPU is then measured idle for a few seconds, and while this process posts unique
valid alerts at --rate per second (open loop, kit/load.py's `publish`) for --seconds after a
warm-up. Hub CPU (user + system, the process and its children) and Redis CPU are shares of one
core over that window; they include accepting the posts (about 0.3 ms each in the hub). At the
end every feed must hold every alert posted (sum of XLEN over the feeds), else the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.fanout import register
from benchmarks.fanout_report import Scenario
from benchmarks.kit.load import Published, publish
from benchmarks.kit.measurement import cpu_seconds
from benchmarks.kit.processes import Server, run_async
from benchmarks.scale_shared import (
    FeedTotal,
    hub_cpu_s,
    hubs_in,
    medians,
    ratio,
    redis_in,
    settle,
    shards_held,
    wait_until,
)

LIVE_SETUPS: dict[str, int] = {"shards1": 1, "shards8": 8, "shards64": 64}  # name: shards
LIVE_KEYS = ("hub_cpu_pct", "redis_cpu_pct", "hub_idle_cpu_pct", "redis_idle_cpu_pct",
             "hub_cpu_ms_per_alert", "alerts_per_s")  # fmt: skip
FEEDS_WITHIN_S = 60.0  # after the last post, for every feed to hold every alert


@dataclasses.dataclass(frozen=True)
class Timing:
    """The part's windows in seconds, and its load."""

    warmup: float
    seconds: float
    idle: float
    rate: float
    subs: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> Timing:
        if args.quick:
            return cls(0.5, 2.0, 0.5, args.rate, args.subs)
        return cls(3.0, args.seconds, 3.0, args.rate, args.subs)


Sample = tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Window:
    """CPU seconds of the hub and of Redis over `seconds` of wall time."""

    seconds: float
    hub_s: float
    redis_s: float

    @classmethod
    def between(cls, first: Sample, last: Sample) -> Window:
        return cls(*(b - a for a, b in zip(first, last, strict=True)))

    def pct(self, cpu_s: float) -> float | None:
        return round(100 * cpu_s / self.seconds, 2) if self.seconds else None


def sample(hub: Server, redis_pid: int) -> Sample:
    """(time.monotonic(), hub CPU seconds, Redis CPU seconds) now."""
    return time.monotonic(), hub_cpu_s(hub), cpu_seconds(redis_pid)


def idle_window(hub: Server, redis_pid: int, seconds: float) -> Window:
    """The hub's and Redis's CPU while nothing is posted: the shards' standing cost."""
    first = sample(hub, redis_pid)
    time.sleep(seconds)
    return Window.between(first, sample(hub, redis_pid))


async def post_measured(
    hub: Server, redis_pid: int, token: str, timing: Timing
) -> tuple[list[Published], Window]:
    """Post at the rate for the warm-up and the window; the CPU over the window alone."""

    async def measure() -> Window:
        await asyncio.sleep(timing.warmup)
        first = sample(hub, redis_pid)
        await asyncio.sleep(timing.seconds)
        return Window.between(first, sample(hub, redis_pid))

    posting = publish(hub.base_url, token, timing.rate, timing.warmup, timing.seconds)
    return await asyncio.gather(posting, measure())


def feeds_filled(feeds: FeedTotal, expected: int) -> int:
    """The feeds' total once it reaches `expected`, or after FEEDS_WITHIN_S (a short feed)."""
    with contextlib.suppress(RuntimeError):
        wait_until(lambda: feeds.read() >= expected, FEEDS_WITHIN_S, "every feed", every=0.25)
    return feeds.read()


def live_run(folder: Path, setup: str, timing: Timing) -> dict[str, Any]:
    """One set-up on a fresh Redis: a `--role all` process with the set-up's shards, idle and
    then under posts at the rate; every alert must reach every feed."""
    folder.mkdir(parents=True)
    shards = LIVE_SETUPS[setup]
    scenario = Scenario("sse", timing.subs, timing.rate, timing.seconds, timing.warmup, 1)
    plan = [("hub", "all")]
    with (
        redis_in(folder) as store,
        hubs_in(folder, store.url, plan, ALERTHUB_FANOUT_SHARDS=str(shards)) as hubs,
    ):
        hub = hubs["hub"]
        assert store.process is not None
        redis_pid = store.process.pid
        subs = run_async(register(hub.base_url, scenario, lambda _i: {"type": "pull"}))
        wait_until(lambda: shards_held(hub) == shards, 60.0, f"{setup}: every shard held")
        settle([hub], quiet=0.3)
        idle = idle_window(hub, redis_pid, timing.idle)
        published, window = run_async(post_measured(hub, redis_pid, subs.publisher_token, timing))
        created = sum(1 for p in published if p.status == "201" and p.created)
        feeds = FeedTotal(store.url, subs.sub_ids)
        try:
            total = feeds_filled(feeds, created * timing.subs)
        finally:
            feeds.close()
    measured = sum(1 for p in published if p.measured)
    return {
        "setup": setup,
        "shards": shards,
        "subscriptions": timing.subs,
        "alerts_posted": len(published),
        "alerts_created": created,
        "alerts_per_s": round(measured / window.seconds, 2) if window.seconds else None,
        "appends_expected": created * timing.subs,
        "appends_total": total,
        "window_s": round(window.seconds, 3),
        "hub_cpu_pct": window.pct(window.hub_s),
        "redis_cpu_pct": window.pct(window.redis_s),
        "hub_cpu_ms_per_alert": round(1000 * window.hub_s / measured, 3) if measured else None,
        "hub_idle_cpu_pct": idle.pct(idle.hub_s),
        "redis_idle_cpu_pct": idle.pct(idle.redis_s),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def live_complete(run: dict[str, Any]) -> bool:
    """Every alert posted was created and reached every feed."""
    return (
        run["alerts_created"] == run["alerts_posted"] > 0
        and run["appends_total"] == run["appends_expected"]
    )


def fanout_live_part(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """--runs runs of the set-ups in turn; the medians per set-up and their ratios to shards1."""
    timing = Timing.of(args)
    runs = [
        live_run(root / f"live-{n}-{setup}", setup, timing)
        for n in range(args.runs)
        for setup in LIVE_SETUPS
    ]
    m = medians(runs, "setup", LIVE_KEYS)
    return {
        "timing": dataclasses.asdict(timing),
        "runs": runs,
        "medians": m,
        "ratios": {
            f"{setup}_over_shards1": {
                key: ratio(m[setup], m["shards1"], key) for key in ("hub_cpu_pct", "redis_cpu_pct")
            }
            for setup in ("shards8", "shards64")
        },
    }


def live_summary(part: dict[str, Any]) -> list[str]:
    lines = [
        f"fanout-live {setup}: hub {m['hub_cpu_pct']}% of a core ({m['hub_idle_cpu_pct']}% idle), "
        f"redis {m['redis_cpu_pct']}% ({m['redis_idle_cpu_pct']}% idle), "
        f"{m['alerts_per_s']} alerts/s"
        for setup, m in part["medians"].items()
    ]
    lines.append(f"fanout-live ratios: {part['ratios']}")
    return lines

"""The figures of one fan-out run (benchmarks/fanout.py): what the receivers got against what
was accepted, where the undelivered rest was when the drain ended, how far the fan-out fell
behind, and what it cost in CPU and Redis calls."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio

from benchmarks.kit.load import Published
from benchmarks.kit.measurement import ms, percentile
from benchmarks.kit.receiver_control import Receivers
from hub.store.keys import Keys


class FanoutLag:
    """A thread that samples, every `every` s, how far the fan-out is behind the event log:
    the age of the oldest log entry it has not read yet (0 when it has read them all). It
    tells a slow fan-out from slow delivery after it."""

    def __init__(self, redis_url: str, every: float = 0.25) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fanout-lag", daemon=True)
        self.samples: list[float] = []

    def _lag(self) -> float:
        events = Keys().events
        groups = self._client.xinfo_groups(events)
        last = groups[0]["last-delivered-id"] if groups else b"0-0"
        oldest = self._client.xrange(events, min=b"(" + last, max="+", count=1)
        if not oldest:
            return 0.0
        return max(0.0, time.time() - int(oldest[0][0].split(b"-")[0]) / 1000)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with contextlib.suppress(redis.RedisError, OSError):
                self.samples.append(self._lag())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._client.close()
        ordered = sorted(self.samples)
        return {
            "fanout_lag_p50_s": round(percentile(ordered, 0.5), 3),
            "fanout_lag_max_s": round(ordered[-1], 3) if ordered else math.nan,
        }


@dataclasses.dataclass
class Drained:
    received: int  # distinct (subscription, alert) pairs when the drain ended
    complete_after_s: float | None  # from the last answer until all arrived; None: never
    waited_s: float


def drain(receivers: Receivers, expected: int, last_answer: float, args: Any) -> Drained:
    """Poll the receivers until all `expected` pairs arrived, none arrived for --drain-idle
    seconds, or --drain-timeout passed since the last answer."""
    started = time.monotonic()
    best, progress_at = -1, time.monotonic()
    while True:
        received = receivers.count()
        now = time.monotonic()
        if received >= expected:
            return Drained(received, round(time.time() - last_answer, 2), now - started)
        if received > best:
            best, progress_at = received, now
        if now - progress_at > args.drain_idle or now - started > args.drain_timeout:
            return Drained(received, None, now - started)
        time.sleep(0.1)


async def backlog(redis_url: str, sub_ids: list[str], webhook: bool) -> dict[str, int]:
    """Where undelivered events were when the drain ended, read from the hub's Redis: log
    entries the fan-out had not read, feed entries, and (webhooks) feed entries after each
    subscription's delivery cursor."""
    keys = Keys()
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        groups = await client.xinfo_groups(keys.events)
        last_read = groups[0]["last-delivered-id"] if groups else b"0-0"
        unread = len(await client.xrange(keys.events, min=b"(" + last_read, max="+"))
        out = {"log_entries": await client.xlen(keys.events), "fanout_unread": unread}
        lengths = [await client.xlen(keys.feed(s)) for s in sub_ids]
        out["feed_entries"] = sum(lengths)
        if webhook:
            behind = 0
            for sub_id in sub_ids:
                cursor = await client.hget(keys.delivery(sub_id), "cursor")
                low = b"(" + cursor if cursor else "-"
                behind += len(await client.xrange(keys.feed(sub_id), min=low, max="+"))
            out["webhook_undelivered"] = behind
        return out
    finally:
        await client.aclose()


async def command_calls(redis_url: str) -> dict[str, int]:
    """Redis's calls per command since it started (INFO commandstats); commands that scripts
    run count too, under their own names, beside the EVALSHA."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def calls_per_event(
    before: dict[str, int], after: dict[str, int], delivered: int, top: int = 10
) -> dict[str, Any]:
    calls = {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)}
    calls.pop("info", None)
    ranked = sorted(calls.items(), key=lambda kv: -kv[1])[:top]
    scale = 1 / delivered if delivered else math.nan
    return {
        "redis_calls_per_event": round(sum(calls.values()) * scale, 2),
        "redis_calls_per_event_by_command": {k: round(n * scale, 2) for k, n in ranked},
    }


def missing(expected: int, received: int, left: dict[str, int], subs: int) -> dict[str, int]:
    """Pairs not received when the drain ended: still queued in the hub (the fan-out had not
    read the alert; or, for webhooks, it waited after a delivery cursor; for SSE, it was in a
    feed but not yet sent), and lost, which are in neither place."""
    queued = left["fanout_unread"] * subs
    if "webhook_undelivered" in left:
        queued += left["webhook_undelivered"]
    else:
        queued += max(0, left["feed_entries"] - received)
    absent = expected - received
    return {"missing_at_end": absent, "queued_at_end": queued, "lost": max(0, absent - queued)}


def log_summary(path: Path, top: int = 10) -> list[dict[str, Any]]:
    """The hub's log lines (warnings and worse, at the default --log-level) counted by level,
    event and error, with one example of each."""
    counts: dict[tuple[str, str, str], int] = {}
    examples: dict[tuple[str, str, str], str] = {}
    with contextlib.suppress(OSError), path.open("rb") as lines:
        for line in lines:
            try:
                entry = orjson.loads(line)
                key = (entry.get("level", "?"), entry.get("event", "?"), entry.get("error", ""))
            except (orjson.JSONDecodeError, AttributeError):
                key = ("?", "not JSON", "")
            counts[key] = counts.get(key, 0) + 1
            examples.setdefault(key, line.decode(errors="replace").strip()[:400])
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [
        {"level": k[0], "event": k[1], "error": k[2], "count": n, "example": examples[k]}
        for k, n in ranked
    ]


@dataclasses.dataclass
class Latencies:
    """Latencies of the measured alerts' first deliveries, with the time each alert was due."""

    from_201: list[float] = dataclasses.field(default_factory=list)
    from_due: list[float] = dataclasses.field(default_factory=list)
    due: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Matched:
    latencies: Latencies
    distinct: int  # distinct (subscription, accepted alert) pairs received
    duplicates: int
    unexpected: int  # events for alerts this run never had accepted
    delivered: int  # every event received, repeats included


def match(
    published: list[Published], dumps: list[dict[str, Any]], where: list[tuple[int, int]]
) -> Matched:
    accepted = {p.hub_id: p for p in published if p.hub_id is not None}
    sub_of = {loc: i for i, loc in enumerate(where)}
    seen: set[tuple[int, str]] = set()
    lat = Latencies()
    duplicates = unexpected = delivered = 0
    for proc, dump in enumerate(dumps):
        for local, hub_id, t in dump["events"]:
            delivered += 1
            key = (sub_of[(proc, local)], hub_id)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            alert = accepted.get(hub_id)
            if alert is None:
                unexpected += 1
            elif alert.measured:
                lat.from_201.append(t - alert.answered)
                lat.from_due.append(t - alert.due)
                lat.due.append(alert.due)
    return Matched(lat, len(seen) - unexpected, duplicates, unexpected, delivered)


def trend(lat: Latencies) -> dict[str, float]:
    """p50 of the deliveries of the first and of the last fifth of the measured alerts: a
    hub that keeps up has the two alike; one that falls behind, the last far above."""
    if not lat.due:
        return {"p50_first_fifth_ms": math.nan, "p50_last_fifth_ms": math.nan}
    low, high = min(lat.due), max(lat.due)
    fifth = (high - low) / 5
    first = sorted(v for d, v in zip(lat.due, lat.from_201, strict=True) if d <= low + fifth)
    last = sorted(v for d, v in zip(lat.due, lat.from_201, strict=True) if d >= high - fifth)
    return {
        "p50_first_fifth_ms": ms(percentile(first, 0.5)),
        "p50_last_fifth_ms": ms(percentile(last, 0.5)),
    }


def cpu_figures(cpu: dict[str, float], seconds: float, delivered: int) -> dict[str, Any]:
    def per_event(name: str) -> float:
        return round(1e6 * cpu[name] / delivered, 1) if delivered else math.nan

    return {
        "window_s": round(seconds, 2),
        "cpu_pct": {k: round(100 * v / seconds, 1) for k, v in cpu.items()},
        "hub_cpu_us_per_event": per_event("hub"),
        "redis_cpu_us_per_event": per_event("redis"),
        "cpu_us_per_event": {k: per_event(k) for k in cpu},
    }


def publish_figures(published: list[Published]) -> dict[str, Any]:
    answered = [p for p in published if p.status == "201"]
    ingest = sorted(p.answered - p.due for p in published if p.measured and p.status == "201")
    errors: dict[str, int] = {}
    for p in published:
        if p.status != "201":
            errors[p.status] = errors.get(p.status, 0) + 1
    return {
        "alerts_posted": len(published),
        "alerts_accepted": len(answered),
        "not_created": sum(1 for p in answered if not p.created),
        "publish_errors": errors,
        "ingest_p50_ms": ms(percentile(ingest, 0.5)),
        "ingest_p99_ms": ms(percentile(ingest, 0.99)),
    }


def receiver_figures(dumps: list[dict[str, Any]]) -> dict[str, Any]:
    types: dict[str, int] = {}
    problems: dict[str, int] = {}
    for dump in dumps:
        for source, target in ((dump["types"], types), (dump["problems"], problems)):
            for k, v in source.items():
                target[k] = target.get(k, 0) + v
    reconnects = sum(d["reconnects"] for d in dumps)
    return {"event_types": types, "receiver_problems": problems, "sse_reconnects": reconnects}

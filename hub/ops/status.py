"""`GET /v1/status`: the hub's state for operators, read from Redis so that every hub process
answers the same (all but `uptime_s`). The shape is in docs/status-contract.md.

Reading is one pipelined round trip per section; the shaping below it is pure.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

import hub
from hub.delivery.shards import group_name
from hub.delivery.subscriptions import Subscription, SubscriptionStore
from hub.ids import now_rfc3339, stream_id
from hub.nodes import Node, NodeRegistry
from hub.settings import Settings
from hub.store.keys import Keys

MINUTES_SHOWN = 60
HOURS_SHOWN = 24
LAGGING_EVENTS = 100  # a subscription this far behind is flagged even while it is not failing
FANOUT_LAG_COUNTED = 10_000  # fan-out lag is counted up to this many events, then "at least"
STORED_OUTCOMES = ("created", "corroborated", "updated")
Raw = Mapping[bytes, bytes]


class StatusSources(Protocol):
    """What the status is read from (context.Hub has all of it)."""

    @property
    def redis(self) -> Redis: ...
    @property
    def keys(self) -> Keys: ...
    @property
    def nodes(self) -> NodeRegistry: ...
    @property
    def subscriptions(self) -> SubscriptionStore: ...
    @property
    def started_at(self) -> float: ...
    @property
    def settings(self) -> Settings: ...


async def collect_status(hub_: StatusSources) -> dict[str, Any]:
    """The whole status document; Redis-derived sections are None when Redis does not answer."""
    out: dict[str, Any] = {
        "version": hub.__version__,
        "uptime_s": round(time.monotonic() - hub_.started_at, 1),
        "generated_at": now_rfc3339(),
    }
    try:
        out["redis"] = await redis_health(hub_.redis)
        now = time.time()
        out["ingest"] = await _ingest(hub_, now)
        out["nodes"] = await _nodes(hub_)
        out["subscriptions"] = await _subscriptions(hub_)
        out["fanout"] = await _fanout(hub_)
        out["sharing_24h"] = await _sharing(hub_, now)
    except (RedisError, OSError, TimeoutError):
        out["redis"] = {"reachable": False}
        for section in ("ingest", "nodes", "subscriptions", "fanout", "sharing_24h"):
            out[section] = None
    return out


async def redis_health(redis: Redis) -> dict[str, Any]:
    started = time.perf_counter()
    await redis.ping()
    latency_ms = (time.perf_counter() - started) * 1000
    info = await redis.info("memory")
    persistence = await redis.info("persistence")
    try:
        appendfsync = (await redis.config_get("appendfsync")).get("appendfsync")
    except ResponseError:  # CONFIG is often disabled on managed Redis
        appendfsync = None
    return {
        "reachable": True,
        "latency_ms": round(latency_ms, 3),
        "used_memory": info.get("used_memory"),
        "used_memory_human": info.get("used_memory_human"),
        "maxmemory": info.get("maxmemory"),
        "persistence": persistence_view(persistence, appendfsync),
    }


def persistence_view(info: Mapping[str, Any], appendfsync: str | None) -> dict[str, Any]:
    last_save = info.get("rdb_last_save_time")
    return {
        "aof_enabled": bool(info.get("aof_enabled")),
        "appendfsync": appendfsync,
        "aof_last_write_status": info.get("aof_last_write_status"),
        "rdb_last_bgsave_status": info.get("rdb_last_bgsave_status"),
        "rdb_last_save_at": _iso(int(last_save)) if last_save else None,
    }


async def _ingest(hub_: StatusSources, now: float) -> dict[str, Any]:
    this_minute = int(now // 60)
    minutes = list(range(this_minute - MINUTES_SHOWN + 1, this_minute + 1))
    async with hub_.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(hub_.keys.ingest_counts)
        for minute in minutes:
            pipe.hgetall(hub_.keys.ingest_minute(minute))
        totals, *per_minute = await pipe.execute()
    return ingest_view(totals, minutes, per_minute)


def ingest_view(totals: Raw, minutes: Sequence[int], per_minute: Sequence[Raw]) -> dict[str, Any]:
    counts = _ints(totals)
    series = [
        {"minute": _iso(minute * 60), **_minute_counts(_ints(raw))}
        for minute, raw in zip(minutes, per_minute, strict=True)
    ]
    return {
        **_minute_counts(counts),
        **{outcome: counts.get(outcome, 0) for outcome in (*STORED_OUTCOMES, "retracted")},
        "rejected_by_reason": {
            name.removeprefix("rejected:"): n
            for name, n in sorted(counts.items())
            if name.startswith("rejected:")
        },
        "last_minute": series[-1] if series else None,
        "per_minute": series,
    }


def _minute_counts(counts: Mapping[str, int]) -> dict[str, int]:
    return {
        "accepted": sum(counts.get(outcome, 0) for outcome in STORED_OUTCOMES),
        "corroborated": counts.get("corroborated", 0),
        "rejected": counts.get("rejected", 0),
    }


async def _nodes(hub_: StatusSources) -> list[dict[str, Any]]:
    nodes = await hub_.nodes.list()
    async with hub_.redis.pipeline(transaction=False) as pipe:
        for node in nodes:
            pipe.hgetall(hub_.keys.node_stats(node.id))
        stats = await pipe.execute()
    return [node_view(node, raw) for node, raw in zip(nodes, stats, strict=True)]


def node_view(node: Node, raw: Raw) -> dict[str, Any]:
    last_seen = raw.get(b"last_seen")
    return {
        "id": node.id,
        "name": node.name,
        "country": node.country,
        "kind": node.kind,
        "posted": int(raw.get(b"posted", 0)),
        "rejected": int(raw.get(b"rejected", 0)),
        "last_seen": last_seen.decode() if last_seen else None,
        "revoked": node.revoked_at is not None,
        # When and by whom it was registered: the status page shows each node registered in
        # the last 7 days first (a new node gets what is shared with its country).
        "roles": sorted(node.roles),
        "created_at": node.created_at or None,
        "registered_by": node.registered_by,
    }


async def _subscriptions(hub_: StatusSources) -> list[dict[str, Any]]:
    _, subs = await hub_.subscriptions.all()
    keys = hub_.keys
    async with hub_.redis.pipeline(transaction=False) as pipe:
        for sub in subs:
            pipe.hmget(keys.feed_state(sub.id), ["appended", "read_seq", "read_at"])
            pipe.hmget(
                keys.delivery(sub.id),
                ["cursor_seq", "last_delivery_at", "consecutive_failures", "last_failure_at"],
            )
            pipe.hlen(keys.dead_letters(sub.id))
            pipe.zcard(keys.retries(sub.id))
            pipe.xlen(keys.feed(sub.id))
        rows = await pipe.execute()
    return [subscription_view(sub, *rows[5 * i : 5 * i + 5]) for i, sub in enumerate(subs)]


def subscription_view(
    sub: Subscription,
    feed_state: Sequence[bytes | None],
    delivery: Sequence[bytes | None],
    dead_letters: int,
    retrying: int,
    held: int,
) -> dict[str, Any]:
    """Lag counts the events in the feed that the subscriber has not been handed: for a
    webhook, those after its delivery cursor and those waiting for a retry; for a pull or SSE
    reader of its owner, those after the furthest entry it was sent. Events trimmed from the
    feed (`held` is what it still holds) before they were handed over are not counted: they
    can no longer be (the reader gets `history-truncated`)."""
    appended, read_seq, read_at = feed_state
    cursor_seq, last_delivery_at, failures, last_failure_at = delivery
    position, delivered_at = (
        (cursor_seq, last_delivery_at) if sub.is_webhook else (read_seq, read_at)
    )
    lag = min(_int(appended) - _int(position), held)
    if sub.is_webhook:
        lag += retrying
    consecutive_failures = _int(failures)
    return {
        "id": sub.id,
        "owner": sub.owner,
        "delivery": sub.delivery_type,
        "state": sub.status,
        "state_reason": sub.status_reason,
        "lag": lag,
        "last_delivery_at": delivered_at.decode() if delivered_at else None,
        "consecutive_failures": consecutive_failures,
        "last_failure_at": last_failure_at.decode() if last_failure_at else None,
        "dead_letters": dead_letters,
        "retrying": retrying,
        "lagging": lag >= LAGGING_EVENTS
        or (lag > 0 and (consecutive_failures > 0 or sub.status != "active")),
    }


async def _fanout(hub_: StatusSources) -> dict[str, Any]:
    """Events logged but not yet fanned out by every shard: those after the slowest shard
    group's last read, and those it read but did not acknowledge (a holder that died
    mid-batch); and how many shards are behind the log."""
    events, shards = hub_.keys.events, hub_.settings.fanout_shards
    newest = await hub_.redis.xrevrange(events, count=1)
    newest_id = newest[0][0].decode() if newest else None
    try:
        groups = await hub_.redis.xinfo_groups(events)
    except ResponseError:  # no log yet
        groups = []
    by_name = {_text(g.get("name")): g for g in groups}
    ours = [by_name.get(group_name(shards, shard)) for shard in range(shards)]
    behind = sum(
        1
        for g in ours
        if g is None
        or int(g["pending"])
        or (newest_id is not None and _text(g["last-delivered-id"]) != newest_id)
    )
    if any(g is None for g in ours):
        after, pending = "-", max((int(g["pending"]) for g in ours if g is not None), default=0)
    else:
        slowest = min(ours, key=lambda g: stream_id(_text(g["last-delivered-id"])))
        after = "(" + _text(slowest["last-delivered-id"])
        pending = max(int(g["pending"]) for g in ours)
    unread = await hub_.redis.xrange(events, after, "+", count=FANOUT_LAG_COUNTED)
    return {
        "lag": len(unread) + pending,
        "lag_is_lower_bound": len(unread) >= FANOUT_LAG_COUNTED,
        "last_event_id": newest_id,
        "shards": shards,
        "shards_behind": behind if newest_id is not None else 0,
    }


async def _sharing(hub_: StatusSources, now: float) -> dict[str, Any]:
    this_hour = int(now // 3600)
    hours = list(range(this_hour - HOURS_SHOWN + 1, this_hour + 1))
    async with hub_.redis.pipeline(transaction=False) as pipe:
        for hour in hours:
            pipe.hgetall(hub_.keys.sharing_hour(hour))
        rows = await pipe.execute()
    return sharing_view(hours, rows)


def sharing_view(hours: Sequence[int], rows: Sequence[Raw]) -> dict[str, Any]:
    """Reports stored per sender country per hour, every country one series over every hour."""
    countries = sorted({country.decode() for row in rows for country in row})
    series = {c: [int(row.get(c.encode(), 0)) for row in rows] for c in countries}
    return {"hours": [_iso(hour * 3600) for hour in hours], "countries": series}


def _iso(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ints(raw: Raw) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items()}


def _int(value: bytes | None) -> int:
    return int(value) if value else 0


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

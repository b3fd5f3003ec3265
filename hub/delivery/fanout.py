"""Fan-out: every event in the log reaches each subscription whose filter and sharing policy
allow it, exactly once into that subscription's feed.

The subscriptions are split into shards (shards.py); each shard is fanned out by one process at
a time and progresses on its own. How crashes and several processes are made safe, per shard:
- One process fans a shard out at a time, under the shard's lease (leases.py); the process the
  shard is given to (members.py) waits for it to lapse or be let go.
- The log is read through the shard's consumer group with one consumer name shared by every
  process, so a new holder first re-reads what its predecessor read but did not acknowledge.
- A feed entry's id is the log id it came from, and feed_append_lua refuses an id at or before
  the feed's newest: redoing an event after a crash, or a stalled former holder finishing one
  late, adds nothing twice. Reading is fenced by the lease (fanout_read_lua), so a process that
  lost the lease cannot take new events out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from hub.delivery.fanout_view import FanoutView, LogWatcher
from hub.delivery.feed_news import FeedNews
from hub.delivery.filters import AlertFacts
from hub.delivery.shards import group_name, is_fanout_group, stream_id_before
from hub.delivery.subscriptions import Subscription
from hub.ids import stream_id
from hub.logs import get_logger
from hub.nodes import Node
from hub.policy import Sharing, may_see
from hub.store.batching import ScriptBatcher
from hub.store.keys import Keys
from hub.store.leases import Lease
from hub.store.scripts import Scripts, feed_append_lua

log = get_logger("hub.fanout")

CONSUMER = "fanout"  # shared by every process: see the module docstring
BATCH = 50
LEASE_TTL_MS = 5_000


REGISTRATION = "node_registered"  # the log type of a registration (create_node_lua)
# The log types of fact-checks (scripts_fact_checks.py): about the alert they were posted on.
FACT_CHECKED = "fact_checked"
FACT_CHECK_RETRACTED = "fact_check_retracted"


@dataclass(frozen=True, slots=True)
class LogEvent:
    id: str
    type: str  # created | corroborated | updated | retracted | node_registered | fact_check…
    hub_id: str  # "" for a registration
    cluster_id: str
    revision: str
    occurred_at: str
    node: str = ""  # a registration's node, as JSON (Node.registration_json)
    fact_check_id: str = ""  # a fact-check's events: which fact-check

    @property
    def is_alert(self) -> bool:
        return self.type != REGISTRATION

    @classmethod
    def from_entry(cls, entry_id: bytes, fields: list[bytes]) -> LogEvent:
        data = {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)}
        return cls(
            id=entry_id.decode(),
            type=data["type"],
            hub_id=data.get("hub_id", ""),
            cluster_id=data.get("cluster_id", ""),
            revision=data.get("revision", "1"),
            occurred_at=data.get("occurred_at", ""),
            node=data.get("node", ""),
            fact_check_id=data.get("fact_check_id", ""),
        )


def announced_to(registered: dict, owner: Node) -> bool:
    """Whether a node's registration goes to `owner`'s subscriptions: to the live nodes of its
    country (so that a country's nodes learn who else now reads what is shared with their
    country), whatever their filters, never to the new node itself; a node with no country is
    announced to nobody."""
    country = registered.get("country")
    return bool(country) and owner.country == country and owner.id != registered.get("id")


def feed_candidate(
    event_type: str, sharing: Sharing, facts: AlertFacts, sub: Subscription, owner: Node
) -> bool | None:
    """Whether to offer the event to `sub`'s feed, and if so whether the alert matches it now.
    None: not offered. The feed script then decides by what the subscription already received:
    a retraction or an update only to those who got the report, a first report of an incident
    as created, a later one as corroborated; a fact-check only to those who had a report of its
    cluster (whatever their filter: they have the claim), its retraction to those who got it."""
    if event_type in ("retracted", FACT_CHECK_RETRACTED):
        return False
    if not may_see(sharing, owner):
        return None
    if event_type == FACT_CHECKED:
        return True
    matches = sub.filter.matches(facts)
    if event_type == "updated":
        return matches
    return True if matches else None


class FanoutBatchFailed(RedisError):
    """Some feed appends of a batch failed; the batch stays unacknowledged and is redone."""


class ShardFanout:
    """One shard's fan-out in this process: it works while it holds the shard's lease."""

    def __init__(
        self,
        shard: int,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        view: FanoutView,
        watcher: LogWatcher,
        news: FeedNews,
        retention: int,
        owner: str,
        batcher: ScriptBatcher,
        dedup_window_s: int,
    ) -> None:
        self.shard = shard
        self._redis = redis
        self._batcher = batcher
        self._keys = keys
        self._scripts = scripts
        self._view = view
        self._watcher = watcher
        self._news = news
        self._retention = retention
        self._window_ms = dedup_window_s * 1000
        self.group = group_name(view.shards, shard)
        self.lease = Lease(scripts, keys.fanout_lease(view.shards, shard), owner, LEASE_TTL_MS)
        self.holding = False

    async def run(self, stopping: asyncio.Event) -> None:
        """Fan out while holding the lease, wait for it otherwise, until `stopping` is set."""
        try:
            while not stopping.is_set():
                try:
                    await ensure_group(self._redis, self._keys.events, self.group)
                    if await self.lease.hold():
                        self.holding = True
                        await self._work(stopping)
                except (RedisError, OSError) as e:
                    log.warning(
                        "fanout_redis_error",
                        shard=self.shard,
                        error=type(e).__name__,
                        detail=str(e)[:200],
                    )
                except Exception:
                    # Never end for good: the batch stays unacknowledged and is tried again.
                    log.exception("fanout_failed", shard=self.shard)
                self.holding = False
                await _wait(stopping, 1.0)
        finally:
            self.holding = False
            with contextlib.suppress(RedisError, OSError):
                await self.lease.release()

    async def _work(self, stopping: asyncio.Event) -> None:
        # First what was read but never acknowledged (by a crashed holder, or by us), then new.
        position = "0"
        while not stopping.is_set():
            # Through the batcher: the shards a new event wakes read in one write to Redis.
            reply = await self._batcher.call(
                self._scripts.fanout_read,
                keys=[self.lease.key, self._keys.events, self._keys.subscriptions_version],
                args=[self.lease.owner, self.group, CONSUMER, position, BATCH, LEASE_TTL_MS],
            )
            if reply[0] == b"lost":
                log.info("fanout_lease_lost", shard=self.shard)
                return
            _, version, newest, entries = reply
            await self._view.refresh(int(version))
            if entries:
                # A pending entry deleted from the log comes back without fields: let it go.
                gone = [e[0] for e in entries if not e[1]]
                if gone:
                    log.error("fanout_entries_gone", ids=[g.decode() for g in gone])
                    await self._batcher.command("XACK", self._keys.events, self.group, *gone)
                events = [LogEvent.from_entry(e[0], e[1]) for e in entries if e[1]]
                if events:
                    await self._fan(events)
                if position != ">":
                    position = entries[-1][0].decode()
                elif len(entries) < BATCH:
                    # A short read of new entries took all there were up to `newest`: no need
                    # to read again to learn that (one read per wake-up, not two).
                    await self._watcher.wait_past(newest.decode(), 1.0)
                continue
            if position != ">":
                position = ">"
                continue
            # Nothing new (the read just renewed the lease): wait for the log to grow past its
            # newest entry, or a second.
            await self._watcher.wait_past(newest.decode(), 1.0)

    async def _fan(self, events: list[LogEvent]) -> None:
        wanted: dict[str, int] = {}
        if self._view.has_subs(self.shard):
            for e in events:
                if e.is_alert:
                    wanted[e.hub_id] = max(wanted.get(e.hub_id, 0), _revision(e))
        alerts = await self._view.alerts(wanted) if wanted else {}
        owners = self._view.owners
        offered: list[str] = []
        calls: list[tuple[list[str], list[object]]] = []
        for event in events:
            if not event.is_alert:
                for sub in self._announced(event):
                    calls.append((self._feed_keys(sub), self._append_args(event, True)))
                    offered.append(sub.id)
                continue
            subs = self._view.subs_after(self.shard, event.id)
            if not subs:
                continue
            alert = alerts.get(event.hub_id)
            if alert is None:
                log.error("fanout_alert_missing", event_id=event.id, hub_id=event.hub_id)
                continue
            sharing, facts = alert
            for sub in subs:
                matches = feed_candidate(event.type, sharing, facts, sub, owners[sub.owner])
                if matches is None:
                    continue
                calls.append((self._feed_keys(sub), self._append_args(event, matches)))
                offered.append(sub.id)
        results = await self._batcher.call_many(self._scripts.feed_append, calls) if calls else []
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            if any("NOSCRIPT" in str(r) for r in failed):
                # Redis lost its script cache (a restart): every call of the batch failed the
                # same way, so loading the script (same text, same sha) and redoing is safe.
                await self._redis.script_load(feed_append_lua)
            raise FanoutBatchFailed(f"{len(failed)} feed appends failed: {failed[0]!r}")
        await self._batcher.command("XACK", self._keys.events, self.group, *[e.id for e in events])
        grown = [
            sub_id
            for sub_id, result in zip(offered, results, strict=True)
            if isinstance(result, bytes) and result.startswith((b"alert.", b"node."))
        ]
        await self._news.publish(grown)

    def _feed_keys(self, sub: Subscription) -> list[str]:
        return [self._keys.feed(sub.id), self._keys.feed_state(sub.id), self._keys.deleted(sub.id)]

    def _append_args(self, event: LogEvent, matches: bool) -> list[object]:
        """feed_append_lua's arguments for `event`."""
        return [
            event.id,
            event.type,
            event.hub_id,
            event.cluster_id,
            event.occurred_at,
            event.revision,
            self._retention,
            "1" if matches else "0",
            event.node,
            self._window_ms,
            event.fact_check_id,
        ]

    def _announced(self, event: LogEvent) -> list[Subscription]:
        """The shard's subscriptions a registration goes to (announced_to)."""
        subs = self._view.subs_after(self.shard, event.id)
        if not subs:
            return []
        try:
            registered = orjson.loads(event.node)
        except orjson.JSONDecodeError:
            log.error("fanout_registration_unreadable", event_id=event.id)
            return []
        if not isinstance(registered, dict):
            return []
        owners = self._view.owners
        return [sub for sub in subs if announced_to(registered, owners[sub.owner])]


def _revision(event: LogEvent) -> int:
    try:
        return int(event.revision)
    except ValueError:
        return 1


async def ensure_group(redis: Redis, events: str, group: str) -> None:
    """Create the shard's consumer group if it is missing. It starts where the slowest fan-out
    group of another split (the single group of hubs before shards, or another shard count)
    stands, since those groups had fanned every subscription out up to there; with none, at the
    log's start (feed appends are idempotent, so reading again what was fanned out adds
    nothing). Groups of this split are no guide: each covered only its own shard."""
    try:
        groups = await redis.xinfo_groups(events)
    except ResponseError:  # no log yet
        groups = []
    names = {_text(g["name"]) for g in groups}
    if group in names:
        return
    own_split = group.rsplit(":", 1)[0] + ":"
    start = "0"
    positions = []
    for g in groups:
        name = _text(g["name"])
        if not is_fanout_group(name) or name.startswith(own_split):
            continue
        positions.append(await _group_position(redis, events, name, g))
    if positions:
        start = min(positions, key=stream_id)
    try:
        await redis.xgroup_create(events, group, id=start, mkstream=True)
        log.info("fanout_group_created", group=group, start=start)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


async def _group_position(redis: Redis, events: str, name: str, info: dict) -> str:
    """Where a group has fanned out everything before: just before its oldest unacknowledged
    entry, or its last read when none is pending."""
    if int(info.get("pending") or 0):
        summary = await redis.xpending(events, name)
        oldest = summary.get("min")
        if oldest:
            return stream_id_before(_text(oldest))
    return _text(info["last-delivered-id"])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _wait(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)

"""Fan-out: every event in the log reaches each subscription whose filter and sharing policy
allow it, exactly once into that subscription's feed.

How crashes and several processes are made safe:
- One process fans out at a time, under a lease (leases.py); the others wait to take over.
- The log is read through a consumer group with one consumer name shared by every process, so
  a new holder first re-reads what its predecessor read but did not acknowledge.
- A feed entry's id is the log id it came from, and feed_append_lua refuses an id at or before
  the feed's newest: redoing an event after a crash, or a stalled former holder finishing one
  late, adds nothing twice. Reading is fenced by the lease (fanout_read_lua), so a process that
  lost the lease cannot take new events out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from hub.delivery.feed_news import FeedNews
from hub.delivery.filters import AlertFacts
from hub.delivery.subscriptions import Subscription, SubscriptionStore
from hub.ids import stream_id
from hub.logs import get_logger
from hub.nodes import Node, NodeRegistry
from hub.policy import Sharing, may_see
from hub.store.batching import ScriptBatcher
from hub.store.keys import Keys
from hub.store.leases import Lease
from hub.store.scripts import Scripts, feed_append_lua

log = get_logger("hub.fanout")

GROUP = "fanout"
CONSUMER = "fanout"  # shared by every process: see the module docstring
BATCH = 50
LEASE_TTL_MS = 5_000
NODES_REFRESH_S = 5.0


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


class Fanout:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        subscriptions: SubscriptionStore,
        nodes: NodeRegistry,
        news: FeedNews,
        retention: int,
        owner: str,
        batcher: ScriptBatcher,
        dedup_window_s: int,
    ) -> None:
        self._redis = redis
        self._batcher = batcher
        self._keys = keys
        self._scripts = scripts
        self._subscriptions = subscriptions
        self._nodes = nodes
        self._news = news
        self._retention = retention
        self._window_ms = dedup_window_s * 1000
        self.lease = Lease(scripts, keys.fanout_lease, owner, LEASE_TTL_MS)
        self._version = -1
        # Each subscription with its start (parsed once): it gets the events logged after it.
        self._subs: list[tuple[Subscription, tuple[int, int]]] = []
        self._owners: dict[str, Node] = {}
        self._owners_at = 0.0

    async def run(self, stopping: asyncio.Event) -> None:
        """Fan out while holding the lease, wait for it otherwise, until `stopping` is set."""
        try:
            while not stopping.is_set():
                try:
                    await self._ensure_group()
                    if await self.lease.hold():
                        await self._work(stopping)
                except (RedisError, OSError) as e:
                    log.warning("fanout_redis_error", error=type(e).__name__, detail=str(e)[:200])
                except Exception:
                    # Never end for good: the batch stays unacknowledged and is tried again.
                    log.exception("fanout_failed")
                await _wait(stopping, 1.0)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await self.lease.release()

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._keys.events, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def _work(self, stopping: asyncio.Event) -> None:
        # First what was read but never acknowledged (by a crashed holder, or by us), then new.
        position = "0"
        while not stopping.is_set():
            reply = await self._scripts.fanout_read(
                keys=[self._keys.fanout_lease, self._keys.events, self._keys.subscriptions_version],
                args=[self.lease.owner, GROUP, CONSUMER, position, BATCH, LEASE_TTL_MS],
            )
            if reply[0] == b"lost":
                log.info("fanout_lease_lost")
                return
            _, version, newest, entries = reply
            await self._refresh(int(version))
            if entries:
                # A pending entry deleted from the log comes back without fields: let it go.
                gone = [e[0] for e in entries if not e[1]]
                if gone:
                    log.error("fanout_entries_gone", ids=[g.decode() for g in gone])
                    await self._redis.xack(self._keys.events, GROUP, *gone)
                events = [LogEvent.from_entry(e[0], e[1]) for e in entries if e[1]]
                if events:
                    await self._fan(events)
                if position != ">":
                    position = entries[-1][0].decode()
                continue
            if position != ">":
                position = ">"
                continue
            if not await self.lease.hold():
                return
            # Nothing new: wait for the log to grow past its newest entry, or a second.
            await self._redis.xread({self._keys.events: newest}, count=1, block=1000)

    async def _refresh(self, version: int) -> None:
        stale_owners = time.monotonic() - self._owners_at > NODES_REFRESH_S
        if version != self._version:
            self._version, subs = await self._subscriptions.all()
            self._subs = [(sub, stream_id(sub.start_after)) for sub in subs]
            stale_owners = True
        if stale_owners:
            self._owners = {n.id: n for n in await self._nodes.list() if n.revoked_at is None}
            self._owners_at = time.monotonic()

    async def _fan(self, events: list[LogEvent]) -> None:
        hub_ids = sorted({e.hub_id for e in events if e.is_alert})
        async with self._redis.pipeline(transaction=False) as pipe:
            for hub_id in hub_ids:
                pipe.hmget(self._keys.alert(hub_id), ["doc", "meta"])
            rows = dict(zip(hub_ids, await pipe.execute(), strict=True))
        offered: list[str] = []
        calls: list[tuple[list[str], list[object]]] = []
        for event in events:
            if not event.is_alert:
                for sub in self._announced(event):
                    calls.append((self._feed_keys(sub), self._append_args(event, True)))
                    offered.append(sub.id)
                continue
            doc, meta = rows[event.hub_id]
            if doc is None or meta is None:
                log.error("fanout_alert_missing", event_id=event.id, hub_id=event.hub_id)
                continue
            sharing = Sharing.from_json(orjson.loads(meta), event.hub_id)
            facts = AlertFacts.from_doc(orjson.loads(doc))
            for sub in self._subs_for(event):
                matches = feed_candidate(event.type, sharing, facts, sub, self._owners[sub.owner])
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
        await self._redis.xack(self._keys.events, GROUP, *[e.id for e in events])
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
        """The subscriptions a registration goes to (announced_to)."""
        try:
            registered = orjson.loads(event.node)
        except orjson.JSONDecodeError:
            log.error("fanout_registration_unreadable", event_id=event.id)
            return []
        if not isinstance(registered, dict):
            return []
        return [
            sub
            for sub in self._subs_for(event)
            if announced_to(registered, self._owners[sub.owner])
        ]

    def _subs_for(self, event: LogEvent) -> list[Subscription]:
        position = stream_id(event.id)
        return [sub for sub, start in self._subs if sub.owner in self._owners and start < position]


async def _wait(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)

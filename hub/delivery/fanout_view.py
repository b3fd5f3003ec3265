"""What every fan-out shard of one process reads alike, read once for all of them: the
subscriptions by shard, their owners, the alerts' sharing and facts, and when the event log
grew (one blocking read of the log per process, not one per shard)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.delivery.filters import AlertFacts
from hub.delivery.lru import LruCache
from hub.delivery.shards import shard_of
from hub.delivery.subscriptions import Subscription, SubscriptionStore
from hub.ids import stream_id
from hub.logs import get_logger
from hub.nodes import Node, NodeRegistry
from hub.policy import Sharing
from hub.store.keys import Keys

log = get_logger("hub.fanout")

NODES_REFRESH_S = 5.0
ALERTS_CACHED = 4096

# Each subscription with its start (parsed once): it gets the events logged after it.
Placed = tuple[Subscription, tuple[int, int]]


class FanoutView:
    """The subscriptions, owners and alerts as the shards of one process see them."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        subscriptions: SubscriptionStore,
        nodes: NodeRegistry,
        shards: int,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._subscriptions = subscriptions
        self._nodes = nodes
        self.shards = shards
        self.version = -1
        self._by_shard: dict[int, list[Placed]] = {}
        self.owners: dict[str, Node] = {}
        self._owners_at = 0.0
        self._lock = asyncio.Lock()
        # hub id -> (revision, sharing, facts): the alert as read at that revision or later.
        self._alerts: LruCache[tuple[int, Sharing, AlertFacts]] = LruCache(ALERTS_CACHED)

    async def refresh(self, version: int) -> None:
        """Have at least subscriptions `version` (read with the events, so every event read was
        logged after any subscription a cache at that version lacks) and owners read within
        NODES_REFRESH_S. A newer list than asked is as good: a subscription made after an event
        starts after it, and one deleted since gets nothing more."""
        async with self._lock:
            stale_owners = time.monotonic() - self._owners_at > NODES_REFRESH_S
            if version > self.version:
                self.version, subs = await self._subscriptions.all()
                by_shard: dict[int, list[Placed]] = {}
                for sub in subs:
                    placed = (sub, stream_id(sub.start_after))
                    by_shard.setdefault(shard_of(sub.id, self.shards), []).append(placed)
                self._by_shard = by_shard
                stale_owners = True
            if stale_owners:
                self.owners = {n.id: n for n in await self._nodes.list() if n.revoked_at is None}
                self._owners_at = time.monotonic()

    def subs_after(self, shard: int, event_id: str) -> list[Subscription]:
        """The shard's subscriptions with a live owner that started before `event_id`."""
        position = stream_id(event_id)
        return [
            sub
            for sub, start in self._by_shard.get(shard, ())
            if sub.owner in self.owners and start < position
        ]

    def has_subs(self, shard: int) -> bool:
        return bool(self._by_shard.get(shard))

    async def alerts(self, wanted: dict[str, int]) -> dict[str, tuple[Sharing, AlertFacts] | None]:
        """Each wanted alert's sharing and facts (None: not stored), as read at the revision
        given or a later one: the same answer as reading it now, which is what fan-out has
        always used (the alert as stored when its event is fanned out)."""
        out: dict[str, tuple[Sharing, AlertFacts] | None] = {}
        missing = []
        for hub_id, revision in wanted.items():
            cached = self._alerts.get(hub_id)
            if cached is not None and cached[0] >= revision:
                out[hub_id] = (cached[1], cached[2])
            else:
                missing.append(hub_id)
        if missing:
            async with self._redis.pipeline(transaction=False) as pipe:
                for hub_id in missing:
                    pipe.hmget(self._keys.alert(hub_id), ["doc", "meta", "revision"])
                rows = await pipe.execute()
            for hub_id, (doc, meta, revision) in zip(missing, rows, strict=True):
                if doc is None or meta is None:
                    out[hub_id] = None
                    continue
                sharing = Sharing.from_json(orjson.loads(meta), hub_id)
                facts = AlertFacts.from_doc(orjson.loads(doc))
                self._alerts.put(hub_id, (int(revision or 1), sharing, facts))
                out[hub_id] = (sharing, facts)
        return out


class LogWatcher:
    """Wakes the shards of this process when the event log grows."""

    def __init__(self, redis: Redis, events_key: str) -> None:
        self._redis = redis
        self._key = events_key
        self.newest = (0, 0)
        self._grown = asyncio.Event()

    async def run(self, stopping: asyncio.Event) -> None:
        last = "0-0"
        while not stopping.is_set():
            try:
                newest = await self._redis.xrevrange(self._key, count=1)
                if newest:
                    last = newest[0][0].decode()
                    self._advance(last)
                await self._redis.xread({self._key: last}, count=1, block=1000)
            except RedisTimeoutError:
                # A blocking read outlived the socket timeout (the process was stalled): the
                # shards lose nothing by it, as they also wake each second on their own.
                log.info("fanout_watch_timeout")
            except (RedisError, OSError) as e:
                log.warning("fanout_watch_error", error=type(e).__name__, detail=str(e)[:200])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 1.0)

    def _advance(self, newest: str) -> None:
        position = stream_id(newest)
        if position > self.newest:
            self.newest = position
            grown, self._grown = self._grown, asyncio.Event()
            grown.set()

    async def wait_past(self, seen: str, within_s: float) -> None:
        """Until the log holds an entry after `seen`, or `within_s` seconds."""
        if self.newest > stream_id(seen):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._grown.wait(), within_s)

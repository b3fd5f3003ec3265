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

# An alert as fan-out needs it: (revision, sharing, facts).
CachedAlert = tuple[int, Sharing, AlertFacts]
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
        self._alerts: LruCache[CachedAlert] = LruCache(ALERTS_CACHED)
        # The reads of alerts under way, by hub id: a shard that needs one of them waits for it.
        self._reading: dict[str, asyncio.Future[dict[str, CachedAlert | None]]] = {}

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
        always used (the alert as stored when its event is fanned out). The shards that one
        event wakes ask for the same alerts at once: the first asks Redis, the others wait for
        its answer (measured: 64 shards made one read each per event, a third of the hub's CPU
        at 20 alerts/s)."""
        out: dict[str, tuple[Sharing, AlertFacts] | None] = {}
        missing: list[str] = []
        joined: list[tuple[str, asyncio.Future[dict[str, CachedAlert | None]]]] = []
        for hub_id, revision in wanted.items():
            cached = self._alerts.get(hub_id)
            if cached is not None and cached[0] >= revision:
                out[hub_id] = (cached[1], cached[2])
            elif (reading := self._reading.get(hub_id)) is not None:
                joined.append((hub_id, reading))
            else:
                missing.append(hub_id)
        if missing:
            for hub_id, found in (await self._read(missing)).items():
                out[hub_id] = None if found is None else (found[1], found[2])
        again: dict[str, int] = {}
        for hub_id, reading in joined:
            try:
                found = (await asyncio.shield(reading))[hub_id]
            except Exception:  # the first asker's read failed (or it was stopped): read anew
                again[hub_id] = wanted[hub_id]
                continue
            if found is not None and found[0] < wanted[hub_id]:
                again[hub_id] = wanted[hub_id]  # read before the revision this event is of
            else:
                out[hub_id] = None if found is None else (found[1], found[2])
        if again:
            out.update(await self.alerts(again))
        return out

    async def _read(self, hub_ids: list[str]) -> dict[str, CachedAlert | None]:
        """The alerts as stored now, cached; others asking meanwhile wait for this read."""
        reading: asyncio.Future[dict[str, CachedAlert | None]]
        reading = asyncio.get_running_loop().create_future()
        reading.add_done_callback(lambda f: f.cancelled() or f.exception())  # none may wait
        for hub_id in hub_ids:
            self._reading[hub_id] = reading
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for hub_id in hub_ids:
                    pipe.hmget(self._keys.alert(hub_id), ["doc", "meta", "revision"])
                rows = await pipe.execute()
            found: dict[str, CachedAlert | None] = {}
            for hub_id, (doc, meta, revision) in zip(hub_ids, rows, strict=True):
                if doc is None or meta is None:
                    found[hub_id] = None
                    continue
                sharing = Sharing.from_json(orjson.loads(meta), hub_id)
                facts = AlertFacts.from_doc(orjson.loads(doc))
                found[hub_id] = (int(revision or 1), sharing, facts)
                self._alerts.put(hub_id, found[hub_id])
        except BaseException as e:
            reading.set_exception(RedisError(f"the shared read of alerts failed: {e!r}"))
            raise
        else:
            reading.set_result(found)
            return found
        finally:
            for hub_id in hub_ids:
                if self._reading.get(hub_id) is reading:
                    del self._reading[hub_id]


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
        # asyncio.timeout, not wait_for: no task made per wait (every shard waits per event).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._grown.wait()

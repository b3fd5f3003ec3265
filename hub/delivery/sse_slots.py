"""How many Server-Sent Events streams a node may hold open, counted in Redis so that the limit
holds across every hub process. Each open stream holds a lease in the node's set
(keys.sse_streams): taken before the stream starts (else 429), renewed while it runs, removed
when it ends. A stream whose client vanished ends at its next write (a heartbeat at the latest)
and gives its slot back; one whose hub process died keeps it until the lease lapses."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.errors import RateLimited
from hub.ids import new_ulid
from hub.store.keys import Keys
from hub.store.scripts import Scripts


def lease_ttl_s(heartbeat_s: float) -> float:
    """A stream writes (and renews) at least every heartbeat; three missed ones lapse it."""
    return 3 * heartbeat_s + 1


@dataclass(slots=True)
class StreamLease:
    """One open stream's slot. `keep` renews it at most every third of its lifetime and says
    whether the stream still holds it (False if it lapsed and the node's slots filled since)."""

    redis_key: str
    stream_id: str
    scripts: Scripts
    limit: int
    ttl_s: float
    renewed_at: float = 0.0

    async def take(self) -> bool:
        taken = await self.scripts.sse_slot(
            keys=[self.redis_key], args=[self.stream_id, int(self.ttl_s * 1000), self.limit]
        )
        self.renewed_at = time.monotonic()
        return bool(taken)

    async def keep(self) -> bool:
        if time.monotonic() - self.renewed_at < self.ttl_s / 3:
            return True
        return await self.take()


class SseSlots:
    def __init__(
        self, redis: Redis, keys: Keys, scripts: Scripts, limit: int, heartbeat_s: float
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._limit = limit
        self._heartbeat_s = heartbeat_s

    @contextlib.asynccontextmanager
    async def held(self, node_id: str) -> AsyncIterator[StreamLease]:
        """A slot for one stream of `node_id` for the life of the block; RateLimited (429) when
        the node already holds its limit."""
        lease = StreamLease(
            self._keys.sse_streams(node_id),
            new_ulid(),
            self._scripts,
            self._limit,
            lease_ttl_s(self._heartbeat_s),
        )
        if not await lease.take():
            raise RateLimited(
                f"node {node_id} has {self._limit} event streams open, the most it may; "
                "close one first",
                # A vanished client's slot frees at its stream's next heartbeat.
                retry_after_s=max(1, math.ceil(self._heartbeat_s)),
            )
        try:
            yield lease
        finally:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.zrem(lease.redis_key, lease.stream_id)

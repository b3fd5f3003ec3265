"""Counts for operators, kept in Redis so that every hub process reports the same numbers.

Stored reports are counted by the store script itself (scripts.store_alert_lua), in the same
step as the write; what is refused before the store, and when a node was last seen, is counted
here. Counting is best effort: a failure to count is logged, and never changes the answer the
caller gets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from hub.ids import now_rfc3339
from hub.logs import get_logger
from hub.store.keys import Keys

log = get_logger("hub.stats")

NO_COUNTRY = "--"  # the sharing chart's column for nodes with no country (the operator)
MINUTE_KEY_TTL_S = 7200  # keys.ingest_minute: the status shows the last 60 minutes
HOUR_KEY_TTL_S = 172_800  # keys.sharing_hour: the chart shows the last 24 hours
LAST_SEEN_EVERY_S = 5.0  # a node's last_seen is written at most this often by one process


async def count_corroboration(redis: Redis, keys: Keys, visible: bool) -> None:
    """Count a report that joined an existing cluster as the sender was answered: corroborated
    when it may see an earlier report, else created (the store script counted everything else
    about it in the same step as the write)."""
    outcome = "corroborated" if visible else "created"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            _count_outcome(pipe, keys, outcome, 1)
            await pipe.execute()
    except (RedisError, OSError) as e:
        log.warning("count_failed", what="corroboration", error=type(e).__name__)


async def count_rejections(
    redis: Redis, keys: Keys, node_id: str | None, by_reason: Mapping[str, int]
) -> None:
    """Count refused alerts of `node_id` (None: a caller the hub could not identify), per
    error code, in one round trip."""
    total = sum(by_reason.values())
    try:
        async with redis.pipeline(transaction=False) as pipe:
            _count_outcome(pipe, keys, "rejected", total)
            for reason, count in by_reason.items():
                pipe.hincrby(keys.ingest_counts, f"rejected:{reason}", count)
            if node_id is not None:
                pipe.hincrby(keys.node_stats(node_id), "rejected", total)
            await pipe.execute()
    except (RedisError, OSError) as e:
        log.warning("count_failed", what="rejection", error=type(e).__name__)


def _count_outcome(pipe: Pipeline, keys: Keys, outcome: str, count: int) -> None:
    """Queue `count` more of `outcome` in the hub-wide totals and in this minute's counts."""
    minute_key = keys.ingest_minute(int(time.time() // 60))
    pipe.hincrby(keys.ingest_counts, outcome, count)
    pipe.hincrby(minute_key, outcome, count)
    pipe.expire(minute_key, MINUTE_KEY_TTL_S)


class LastSeen:
    """Writes a node's `last_seen` when it calls, at most every LAST_SEEN_EVERY_S per process."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._written_at: dict[str, float] = {}

    async def saw(self, node_id: str) -> None:
        now = time.monotonic()
        if now - self._written_at.get(node_id, -LAST_SEEN_EVERY_S) < LAST_SEEN_EVERY_S:
            return
        self._written_at[node_id] = now
        try:
            await self._redis.hset(self._keys.node_stats(node_id), "last_seen", now_rfc3339())
        except (RedisError, OSError) as e:
            log.warning("count_failed", what="last_seen", error=type(e).__name__)

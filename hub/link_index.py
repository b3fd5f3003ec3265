"""The link index ("related" alerts) kept up to date off the ingest path.

Storing a report used to write its link index entries in the same script: a ZADD into one large
sorted set per window, a quarter of Redis's time per alert and, measured, 14% of the hub's
throughput and 6 ms of its p99 latency. Now the store script only records the alert's link
scores; `index_links_lua` later writes the entries of many new reports in one call, and advances
its position in the event log in the same atomic step. Each hub process catches up in the
background every few milliseconds, and a read of "related" catches up first, so readers never
see the index behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from hub.keys import Keys
from hub.logs import get_logger
from hub.redis_faults import store_unavailable
from hub.scripts import Scripts

log = get_logger("hub.link_index")

EVENTS_PER_CALL = 200  # ~1 ms of Redis time: short enough not to hold up the ingest calls
IDLE_PAUSE_S = 0.01
RETRY_PAUSE_S = 1.0


class LinkIndexer:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, window_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self.window_s = window_s

    async def catch_up(self) -> int:
        """Index every new report logged so far; returns how many events were read."""
        total = 0
        while True:
            read = await self._scripts.index_links(
                keys=[self._keys.events, self._keys.links_indexed],
                args=[self._keys.core, EVENTS_PER_CALL, self.window_s],
            )
            total += read
            if read < EVENTS_PER_CALL:
                return total

    async def run(self) -> None:
        """Catch up again and again until cancelled; a Redis outage only pauses it."""
        while True:
            try:
                await self.catch_up()
            except Exception as e:
                if store_unavailable(e) is None:
                    log.exception("link_index_failed")
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            await asyncio.sleep(IDLE_PAUSE_S)  # lets new reports gather into one call


@contextlib.asynccontextmanager
async def running(indexer: LinkIndexer) -> AsyncIterator[None]:
    task = asyncio.create_task(indexer.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

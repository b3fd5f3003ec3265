"""The Redis a command other than `serve` works on: that of ALERTHUB_REDIS_URL, else the
embedded Redis of a hub running on ALERTHUB_DATA_DIR, else that folder's Redis started just for
the command."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from hub.settings import Settings
from hub.store.connect import RedisConnector
from hub.store.embedded import EmbeddedRedis, answers, shared_url


@contextlib.asynccontextmanager
async def command_redis(settings: Settings) -> AsyncIterator[Redis]:
    embedded = None
    url = settings.redis_url
    if url is None:
        running = shared_url(settings.data_dir.resolve())
        if running is not None and answers(running):
            url = running
        else:
            embedded = EmbeddedRedis(settings.data_dir, settings.appendfsync)
            url = embedded.start()
    connector = RedisConnector.from_url(url)
    client = connector.client(max_connections=4)
    try:
        yield client
    finally:
        await client.aclose()
        await connector.aclose()
        if embedded is not None:
            embedded.close()

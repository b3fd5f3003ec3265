"""Fixtures of the Redis fault tests (test_redis_kill, test_redis_full): a Redis of the test's
own that it may SIGKILL, fill and restart on the same files, a real hub process on it, an HTTP
client for the hub and a Redis client for the checks. Other fault tests that define a fixture of
the same name (`redis` on the suite's shared server) use their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.faults.redis_checks import CONCURRENCY
from tests.faults.redis_harness import HubClient, OwnRedis, start_hub
from tests.hubproc import HubProcess


@pytest.fixture
def store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OwnRedis]:
    """Parametrise indirectly with an `appendfsync` policy; `everysec` (as shipped) otherwise."""
    own = OwnRedis(tmp_path / "redis", fsync=getattr(request, "param", "everysec")).start()
    yield own
    own.stop()


@pytest.fixture
async def hub(store: OwnRedis, tmp_path: Path) -> AsyncIterator[HubProcess]:
    proc = await start_hub(store.url, tmp_path)
    yield proc
    await asyncio.to_thread(proc.stop)


@pytest.fixture
async def client(hub: HubProcess) -> AsyncIterator[HubClient]:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield HubClient(session, hub.base_url)


@pytest.fixture
async def redis(store: OwnRedis) -> AsyncIterator[Redis]:
    """A client for the checks; it reconnects by itself after a restart."""
    client = store.client()
    yield client
    await client.aclose()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session that opens a new connection per request, so that the requests of a test
    of `serve --workers` spread over the workers (the kernel picks one per connection)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """Hub processes a test starts and appends here; each still running is stopped at its end."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        if hub.process is not None:
            hub.stop()

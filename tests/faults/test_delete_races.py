"""A subscription deleted while the fan-out or its webhook worker is busy with it leaves no keys
behind: work already under way with the old subscription list must not write the feed, its
state or the delivery state again after the delete (nothing would ever remove them)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from hub.delivery.subscriptions import SubscriptionStore, new_subscription
from hub.ids import stream_id
from hub.store.keys import Keys
from hub.store.scripts import Scripts
from tests.delivery.test_fanout_crash import BLOCKER, stopped_in_python
from tests.fanout_groups import ONE_GROUP, ONE_SHARD_ENV, one_lease
from tests.faults.cluster import Client, Cluster, fanned_out, wait_for
from tests.feed_model import PUBLISHERS, Scenario, Sub, receives
from tests.hubproc import HubProcess

KEYS = Keys()
LEASE = one_lease(KEYS)
BACKLOGS = 4  # tries at catching the fan-out mid-batch; a loaded machine can miss the moment


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def keys_of(redis: Redis, sub_id: str) -> set[str]:
    """Every key in the subscription's slot, whatever its name (SCAN, so none is missed)."""
    return {k.decode() async for k in redis.scan_iter(match=f"*{{sub:{sub_id}}}*")}


async def appends_to_come(redis: Redis, sub: Sub) -> bool:
    """Whether the fan-out has read log entries (not yet acknowledged) past the newest one
    offered to `sub`'s feed: appends for it are still to be made."""
    pending = await redis.xpending_range(KEYS.events, ONE_GROUP, "-", "+", 1000)
    last = await redis.hget(KEYS.feed_state(sub.id), "last")
    newest = pending[-1]["message_id"].decode() if pending else None
    return bool(newest and last and stream_id(last.decode()) < stream_id(newest))


async def stop_before_appends(redis: Redis, hub: HubProcess, sub: Sub, within: float = 30) -> bool:
    """Let the fan-out go (the test held its lease), then SIGSTOP the process in its own code
    at a moment when it holds a batch with appends for `sub` still to make. False when the
    fan-out got through the whole backlog before such a moment was caught (a loaded machine)."""
    assert hub.process is not None
    await redis.delete(LEASE)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if not await appends_to_come(redis, sub):
            if await fanned_out(redis, shards=1):
                return False
            await asyncio.sleep(0.001)
            continue
        os.kill(hub.process.pid, signal.SIGSTOP)
        await asyncio.sleep(0.05)  # the stopped process's last commands land
        if await appends_to_come(redis, sub) and stopped_in_python(hub.process.pid):
            return True
        os.kill(hub.process.pid, signal.SIGCONT)
    return False


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs Linux /proc")
@pytest.mark.timeout(90)
async def test_subscription_deleted_mid_fanout_leaves_no_keys(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """Deleted while the fan-out holds a batch that includes it: no feed or state comes back."""
    await redis.set(LEASE, BLOCKER, px=120_000)  # a backlog builds up
    cluster = Cluster(redis_url, tmp_path, 1, env=ONE_SHARD_ENV)
    scenario = Scenario(random.Random(20261206))
    try:
        await cluster.start_all()
        async with aiohttp.ClientSession() as session:
            client = Client(session, cluster, random.Random(1))
            await client.add_nodes()
            doomed = await client.subscribe("al-cert", {})
            kept = await client.subscribe("rs-cert", {})
            hub = cluster.procs[0]
            assert hub is not None and hub.process is not None
            for _backlog in range(BACKLOGS):
                await redis.set(LEASE, BLOCKER, px=120_000)
                for n in range(6):
                    await client.post_batch(scenario.batch(PUBLISHERS[n % 4], size=50))
                if await stop_before_appends(redis, hub, doomed):
                    break
            else:
                raise AssertionError(f"{BACKLOGS} backlogs fanned out before one could be caught")
            store = SubscriptionStore(redis, KEYS, Scripts.register(redis))
            assert await store.delete(doomed.id)
            os.kill(hub.process.pid, signal.SIGCONT)
            await wait_for(lambda: fanned_out(redis, shards=1), 30, "the fan-out to finish the log")
            left = await keys_of(redis, doomed.id)
            assert left == {KEYS.deleted(doomed.id)}, left
            assert await redis.xlen(KEYS.feed(kept.id)) == sum(
                receives(kept, r) for r in scenario.reports
            )
    finally:
        cluster.stop()


async def test_delivery_writes_nothing_for_a_deleted_subscription(redis: Redis) -> None:
    """A webhook worker that takes the lease again just after the delete records neither an
    attempt nor a verification: the delivery state and retry keys stay gone."""
    scripts = Scripts.register(redis)
    store = SubscriptionStore(redis, KEYS, scripts)
    body = {"delivery": {"type": "webhook", "url": "https://hooks.example/alerts"}}
    sub = await store.create(new_subscription("al-cert", body))
    assert await store.delete(sub.id)
    assert await store.get(sub.id) is None
    lease = KEYS.delivery_lease(sub.id)
    assert await scripts.lease(keys=[lease], args=["worker", 5_000]) == 1  # it was free
    record = b'{"attempts": 1}'
    delivery_keys = [KEYS.delivery(sub.id), KEYS.retries(sub.id), KEYS.retry_info(sub.id)]
    reply = await scripts.delivery_done(
        keys=[lease, *delivery_keys, KEYS.dead_letters(sub.id), KEYS.deleted(sub.id)],
        args=["worker", "5-0", "retry", "1", 1, "2026-12-06T10:00:00Z", 2, record, 1],
    )
    assert reply == [b"lost"]
    verify_keys = [KEYS.delivery(sub.id), KEYS.deleted(sub.id)]
    assert await scripts.verify_failed(keys=verify_keys, args=[1, 2]) == 0
    # Only the marker, and the lease the worker took, which lapses on its own.
    assert await keys_of(redis, sub.id) == {KEYS.deleted(sub.id), lease}
    assert 0 < await redis.pttl(lease) <= 5_000

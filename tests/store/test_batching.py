"""Concurrent store calls share one pipeline, and each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from collections import Counter

import redis
from redis.asyncio import Redis

from hub.store.batching import ScriptBatcher
from hub.store.redis_pipe import PipelinedRedis
from tests.conftest import Api, threat_alert


def unique(i: int) -> dict:
    return threat_alert(f"t-{i}", indicators=[{"type": "domain", "value": f"d{i}.example"}])


async def test_concurrent_posts_each_get_their_own_answer(api: Api) -> None:
    """Forty concurrent posts (some resends, one with a stale revision) get the right answers."""
    await api.add_node("al-cert", "AL")
    await api.post("al-cert", unique(0) | {"revision": 5})
    bodies = [unique(i) for i in range(1, 40)] + [unique(0) | {"revision": 2}]
    answers = await asyncio.gather(*(api.post("al-cert", b) for b in bodies))
    statuses = Counter(status for status, _ in answers)
    assert statuses == {201: 39, 409: 1}
    assert len({body["hub_id"] for status, body in answers if status == 201}) == 39


async def test_script_cache_flushed_under_the_hub(api: Api, redis_url: str) -> None:
    """After Redis loses its script cache (a restart, SCRIPT FLUSH), posts still succeed."""
    await api.add_node("al-cert", "AL")
    client = redis.Redis.from_url(redis_url)
    try:
        client.script_flush()
    finally:
        client.close()
    answers = await asyncio.gather(*(api.post("al-cert", unique(i)) for i in range(10)))
    assert [status for status, _ in answers] == [201] * 10
    status, _ = await api.get("al-cert", "/v1/alerts?limit=20")
    assert status == 200


async def test_call_many_waits_for_replicas_when_asked(redis_url: str) -> None:
    """call_many with a ReplicasAck ends its calls with a WAIT on their connection: on a Redis
    without replicas, every call runs but answers NotReplicated; without it, as before."""
    from redis.asyncio import Redis

    from hub.store.batching import NotReplicated, ReplicasAck, ScriptBatcher
    from hub.store.redis_pipe import PipelinedRedis

    client = Redis.from_url(redis_url)
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    await script(keys=["t:many"])  # loaded, and counted once
    batcher = ScriptBatcher(PipelinedRedis(redis_url))
    try:
        calls = [(["t:many"], []) for _ in range(3)]
        assert await batcher.call_many(script, calls) == [2, 3, 4]
        replies = await batcher.call_many(script, calls, ReplicasAck(1, 0.05))
        assert all(isinstance(r, NotReplicated) for r in replies), replies
        assert batcher.replicas_seen == 0  # what ROLE said after the WAIT
        assert await batcher.call_many(script, calls, ReplicasAck(0, 0.05)) == [8, 9, 10]
        assert int(await client.get("t:many")) == 10  # they ran
    finally:
        await batcher.close()
        await client.delete("t:many")
        await client.aclose()


PUSH = "return redis.call('RPUSH', KEYS[1], ARGV[1])"


async def _pushed_in_order(redis_url: str, turns: int) -> bool:
    """One call_many of 40 pushes, queued `turns` loop turns after another caller started
    opening the batcher's connection: whether they ran in the order given."""
    script = Redis.from_url(redis_url).register_script(PUSH)
    pipe = PipelinedRedis(redis_url)
    batcher = ScriptBatcher(pipe)
    try:
        other = asyncio.ensure_future(batcher.call_many(script, [(["other"], [0])]))
        for _ in range(turns):
            await asyncio.sleep(0)
        key = f"order-{turns}"
        await batcher.call_many(script, [([key], [i]) for i in range(40)])
        await other
    finally:
        await batcher.close()
    client = redis.Redis.from_url(redis_url)
    try:
        got = [int(x) for x in client.lrange(key, 0, -1)]
    finally:
        client.close()
    return got == sorted(got)


async def test_call_many_runs_in_order_while_the_connection_opens(redis_url: str) -> None:
    """call_many's calls run in order (fan-out relies on it: a feed refuses an event older than
    its newest), also when the connection opens in the middle of them, as at a delivery
    process's start with a backlog."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.script_load(PUSH)
    finally:
        client.close()
    in_order = {turns: await _pushed_in_order(redis_url, turns) for turns in range(16)}
    assert all(in_order.values()), in_order

"""The link index is written off the ingest path, in bulk, exactly as the store would have."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from hub.keys import Keys, links_bucket_now
from hub.link_index import EVENTS_PER_CALL, LinkIndexer
from hub.scripts import Scripts
from tests.conftest import Api, threat_alert

WINDOW_S = 3600


async def log_new_reports(client: aioredis.Redis, keys: Keys, count: int) -> None:
    """`count` alerts as the store script leaves them: record with link scores, event logged."""
    bucket = links_bucket_now(WINDOW_S)
    for i in range(count):
        hub_id = f"01TESTHUB{i:017d}"
        await client.hset(
            keys.alert(hub_id), mapping={"links": f'["{i}","{i + 1}"]', "links_bucket": bucket}
        )
        await client.xadd(keys.events, {"type": "created", "hub_id": hub_id})
    await client.xadd(keys.events, {"type": "retracted", "hub_id": "01TESTHUB" + "0" * 17})


async def test_concurrent_catch_ups_index_every_report_once(redis_url: str) -> None:
    """Two hub processes catching up at once over more than one call's worth of events: every
    report gets its entries, the position ends at the last event, nothing fails."""
    client = aioredis.Redis.from_url(redis_url)
    keys = Keys()
    scripts = Scripts.register(client)
    try:
        count = EVENTS_PER_CALL * 2 + 7
        await log_new_reports(client, keys, count)
        first, second = (LinkIndexer(client, keys, scripts, WINDOW_S) for _ in range(2))
        read = await asyncio.gather(first.catch_up(), second.catch_up())
        assert sum(read) == count + 1  # each event read by exactly one of the two
        index = keys.links(links_bucket_now(WINDOW_S))
        assert await client.zcard(index) == 2 * count
        assert await client.zrangebyscore(index, 5, 5) == [
            b"01TESTHUB00000000000000004:2",
            b"01TESTHUB00000000000000005:1",
        ]
        last_id = (await client.xrevrange(keys.events, count=1))[0][0]
        assert await client.get(keys.links_indexed) == last_id
        assert await client.ttl(index) > 2 * WINDOW_S
        assert await first.catch_up() == 0
    finally:
        await client.aclose()


async def test_related_is_current_right_after_the_post(api: Api) -> None:
    """A reader sees a report in "related" at once, however far the background indexer is."""
    await api.add_node("al-cert", "AL")
    await api.add_node("me-cert", "ME")
    for i in range(30):
        shared = {"type": "domain", "value": f"shared-{i}.example"}
        _, first = await api.post("al-cert", threat_alert(f"a-{i}", indicators=[shared]))
        _, second = await api.post(
            "me-cert",
            threat_alert(f"m-{i}", indicators=[shared, {"type": "ipv4", "value": f"10.0.0.{i}"}]),
        )
        _, stored = await api.get("me-cert", f"/v1/alerts/{second['hub_id']}")
        assert stored["related"] == [first["hub_id"]]

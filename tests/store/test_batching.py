"""Concurrent store calls share one pipeline, and each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from collections import Counter

import redis

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

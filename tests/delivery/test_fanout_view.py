"""What the fan-out's shards of one process read alike (hub/delivery/fanout_view.py), against a
real Redis: the alerts one event wakes every shard for are read once, and never older than the
revision of the event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from hub.delivery.fanout_view import FanoutView
from hub.delivery.subscriptions import SubscriptionStore
from hub.nodes import NodeRegistry
from hub.settings import Settings
from hub.store.keys import Keys
from hub.store.scripts import Scripts
from tests.conftest import Api, unique_threat


@pytest.fixture
async def view(settings: Settings) -> AsyncIterator[tuple[FanoutView, Redis]]:
    redis = Redis.from_url(settings.redis_url)
    keys = Keys(settings.key_prefix)
    scripts = Scripts.register(redis)
    yield (
        FanoutView(
            redis, keys, SubscriptionStore(redis, keys, scripts),
            NodeRegistry(redis, keys, scripts), shards=64,
        ),
        redis,
    )  # fmt: skip
    await redis.aclose()


async def hmget_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


async def test_shards_asking_at_once_share_one_read(
    api: Api, view: tuple[FanoutView, Redis]
) -> None:
    """64 shards woken by one event ask for its alert at the same moment: Redis is asked once,
    and every shard gets the same answer (an alert not stored is None for all)."""
    fanout_view, redis = view
    await api.add_node("al-cert", country="AL")
    _, posted = await api.post("al-cert", unique_threat("t-1", severity="high"))
    hub_id = posted["hub_id"]
    before = await hmget_calls(redis)
    answers = await asyncio.gather(
        *(fanout_view.alerts({hub_id: 1, "01NOTSTORED0000000000000000": 1}) for _ in range(64))
    )
    assert await hmget_calls(redis) - before == 2  # one read: two keys in one pipeline
    first = answers[0]
    sharing, facts = first[hub_id] or (None, None)
    assert facts is not None and facts.severity == "high" and sharing is not None
    assert first["01NOTSTORED0000000000000000"] is None
    assert all(answer == first for answer in answers)
    again = await fanout_view.alerts({hub_id: 1})  # cached now
    assert again[hub_id] == first[hub_id] and await hmget_calls(redis) - before == 2


async def test_an_event_of_a_later_revision_reads_the_alert_again(
    api: Api, view: tuple[FanoutView, Redis]
) -> None:
    """A cached (or shared) read of revision 1 does not answer for the update's event: the
    update's facts are what its subscribers' filters are matched against."""
    fanout_view, _ = view
    await api.add_node("al-cert", country="AL")
    _, posted = await api.post("al-cert", unique_threat("t-1", severity="low"))
    hub_id = posted["hub_id"]
    first = (await fanout_view.alerts({hub_id: 1}))[hub_id]
    assert first is not None and first[1].severity == "low"
    status, _ = await api.post("al-cert", unique_threat("t-1", revision=2, severity="critical"))
    assert status == 200
    early, late = await asyncio.gather(
        fanout_view.alerts({hub_id: 1}), fanout_view.alerts({hub_id: 2})
    )
    assert early[hub_id] == first  # revision 1 is as good as any for the first event
    updated = late[hub_id]
    assert updated is not None and updated[1].severity == "critical"

"""How the fan-out's shards and the webhook workers are shared among delivery processes
(hub/delivery/shards.py), and where a shard's consumer group starts (fanout.ensure_group)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from hub.delivery.fanout import ensure_group
from hub.delivery.shards import (
    group_name,
    shard_of,
    shards_of,
    share_of,
    stream_id_before,
)
from hub.ids import new_ulid

MEMBERS = ["host:3:c", "host:1:a", "host:2:b"]
LOG = "test-shards:log"


def test_every_shard_has_one_member_and_counts_differ_by_at_most_one() -> None:
    for members in (MEMBERS[:1], MEMBERS[:2], MEMBERS):
        shares = [shards_of(m, members, 64) for m in members]
        assert sorted(s for share in shares for s in share) == list(range(64))
        sizes = [len(share) for share in shares]
        assert max(sizes) - min(sizes) <= 1, sizes
    assert shards_of("host:9:z", MEMBERS, 64) == frozenset()  # not a member: nothing


def test_webhook_shares_are_even_and_a_new_subscription_moves_no_other() -> None:
    subs = sorted(new_ulid() for _ in range(10))
    before = [share_of(m, MEMBERS, subs) for m in MEMBERS]
    assert sorted(s for share in before for s in share) == subs
    assert max(map(len, before)) - min(map(len, before)) <= 1
    newer = new_ulid()
    after = [share_of(m, MEMBERS, [*subs, newer]) for m in MEMBERS]
    for old, new in zip(before, after, strict=True):
        assert old <= new and len(new - old) <= 1


def test_a_subscription_keeps_its_shard() -> None:
    sub_id = new_ulid()
    assert shard_of(sub_id, 64) == shard_of(sub_id, 64)
    assert {shard_of(new_ulid(), 64) for _ in range(2000)} == set(range(64))


def test_stream_id_before() -> None:
    assert stream_id_before("1700000000000-5") == "1700000000000-4"
    assert stream_id_before("1700000000000-0") == f"1699999999999-{2**64 - 1}"
    assert stream_id_before("0-0") == "0-0"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.delete(LOG)
    await client.aclose()


async def _group(redis: Redis, name: str) -> dict:
    return next(g for g in await redis.xinfo_groups(LOG) if g["name"].decode() == name)


async def test_a_new_group_starts_where_the_old_split_had_got_to(redis: Redis) -> None:
    """Hubs before shards read through one group "fanout": the shards' groups start just before
    its oldest unacknowledged entry, so nothing it had not finished is skipped."""
    ids = [(await redis.xadd(LOG, {"n": n})).decode() for n in range(6)]
    await redis.xgroup_create(LOG, "fanout", id="0")
    await redis.xreadgroup("fanout", "fanout", {LOG: ">"}, count=4)
    await redis.xack(LOG, "fanout", ids[0], ids[1])  # 2 and 3 read, not acknowledged
    await ensure_group(redis, LOG, group_name(64, 7))
    group = await _group(redis, group_name(64, 7))
    assert group["last-delivered-id"].decode() == stream_id_before(ids[2])
    read = await redis.xreadgroup(group_name(64, 7), "fanout", {LOG: ">"})
    assert [e[0].decode() for e in read[0][1]] == ids[2:]


async def test_groups_of_the_same_split_are_no_guide(redis: Redis) -> None:
    """A sibling shard's group covered only its own shard: a missing shard starts at the
    slowest group of another split, or at the log's start when there is none."""
    ids = [(await redis.xadd(LOG, {"n": n})).decode() for n in range(4)]
    await redis.xgroup_create(LOG, group_name(64, 0), id=ids[3])
    await ensure_group(redis, LOG, group_name(64, 1))
    assert (await _group(redis, group_name(64, 1)))["last-delivered-id"] == b"0-0"
    await redis.xgroup_create(LOG, group_name(16, 0), id=ids[2])
    await redis.xgroup_create(LOG, group_name(16, 1), id=ids[1])
    await ensure_group(redis, LOG, group_name(64, 2))
    assert (await _group(redis, group_name(64, 2)))["last-delivered-id"].decode() == ids[1]
    await ensure_group(redis, LOG, group_name(64, 2))  # there already: left as it is

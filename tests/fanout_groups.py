"""The fan-out's consumer groups and leases as tests look at them (hub/delivery/shards.py)."""

from __future__ import annotations

from redis.asyncio import Redis

from hub.delivery.shards import group_name
from hub.store.keys import Keys

DEFAULT_SHARDS = 64
# Tests of one shard's crash safety run the hub with one shard, so one lease holds all of it.
ONE_SHARD_ENV = {"ALERTHUB_FANOUT_SHARDS": "1"}
ONE_GROUP = group_name(1, 0)


def one_lease(keys: Keys) -> str:
    return keys.fanout_lease(1, 0)


def groups_of(shards: int) -> set[str]:
    return {group_name(shards, shard) for shard in range(shards)}


async def fanned_out(redis: Redis, keys: Keys, shards: int = DEFAULT_SHARDS) -> bool:
    """Whether every shard's group has read and acknowledged the whole event log."""
    newest = await redis.xrevrange(keys.events, count=1)
    if not newest:
        return False
    wanted = groups_of(shards)
    seen = {}
    for g in await redis.xinfo_groups(keys.events):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name in wanted:
            seen[name] = g
    return len(seen) == len(wanted) and all(
        g["pending"] == 0 and g["last-delivered-id"] == newest[0][0] for g in seen.values()
    )

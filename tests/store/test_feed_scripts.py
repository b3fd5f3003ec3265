"""The feed script against a real Redis: exactly once, created vs corroborated, retention."""

from __future__ import annotations

from redis.asyncio import Redis

from hub.store.keys import Keys
from hub.store.scripts import Scripts

KEYS = Keys()


async def append(scripts: Scripts, event_id: str, log_type: str, hub_id: str, cluster: str,
                 matches: bool = True, retention: int = 100) -> bytes:  # fmt: skip
    return await scripts.feed_append(
        keys=[KEYS.feed("s"), KEYS.feed_state("s"), KEYS.deleted("s")],
        args=[event_id, log_type, hub_id, cluster, "t", 1, retention, "1" if matches else "0"],
    )


async def test_same_or_older_event_is_never_added_twice(redis_url: str) -> None:
    """Redoing an event (after a crash) or an older one (a late former holder) adds nothing."""
    redis = Redis.from_url(redis_url)
    scripts = Scripts.register(redis)
    assert await append(scripts, "5-0", "created", "h1", "c1") == b"alert.created"
    assert await append(scripts, "5-0", "created", "h1", "c1") == b"duplicate"
    assert await append(scripts, "4-9", "created", "h0", "c0") == b"duplicate"
    assert await append(scripts, "10-0", "created", "h2", "c2") == b"alert.created"
    assert [e[0] for e in await redis.xrange(KEYS.feed("s"))] == [b"5-0", b"10-0"]
    await redis.aclose()


async def test_event_types_follow_what_the_subscriber_received(redis_url: str) -> None:
    """Second report of a cluster: corroborated; update/retraction only of a received report;
    an update that now matches a never-received report arrives as created."""
    redis = Redis.from_url(redis_url)
    scripts = Scripts.register(redis)
    assert await append(scripts, "1-0", "created", "h1", "c1") == b"alert.created"
    assert await append(scripts, "2-0", "corroborated", "h2", "c1") == b"alert.corroborated"
    assert await append(scripts, "3-0", "updated", "h1", "c1") == b"alert.updated"
    assert await append(scripts, "4-0", "retracted", "h9", "c9", False) == b"skipped"
    assert await append(scripts, "5-0", "updated", "h8", "c8", False) == b"skipped"
    assert await append(scripts, "6-0", "updated", "h8", "c8", True) == b"alert.created"
    assert await append(scripts, "7-0", "retracted", "h8", "c8", False) == b"alert.retracted"
    await redis.aclose()


async def test_retention_trims_and_remembers_where(redis_url: str) -> None:
    """Past the retention the oldest entries go and the feed remembers the newest trimmed id."""
    redis = Redis.from_url(redis_url)
    scripts = Scripts.register(redis)
    for n in range(1, 6):
        await append(scripts, f"{n}-0", "created", f"h{n}", f"c{n}", retention=3)
    assert [e[0] for e in await redis.xrange(KEYS.feed("s"))] == [b"3-0", b"4-0", b"5-0"]
    assert await redis.hget(KEYS.feed_state("s"), "trimmed_upto") == b"2-0"
    await redis.aclose()


async def test_a_registration_takes_its_place_in_the_feed_order(redis_url: str) -> None:
    """A node_registered log entry becomes node.registered carrying the node, numbered and
    fenced like alert events (redone: nothing added), and leaves no cluster or report behind."""
    redis = Redis.from_url(redis_url)
    scripts = Scripts.register(redis)
    node = '{"id":"rs-2","country":"RS"}'

    async def register(event_id: str) -> bytes:
        return await scripts.feed_append(
            keys=[KEYS.feed("s"), KEYS.feed_state("s"), KEYS.deleted("s")],
            args=[event_id, "node_registered", "", "", "t", "1", 100, "1", node],
        )

    assert await append(scripts, "1-0", "created", "h1", "c1") == b"alert.created"
    assert await register("2-0") == b"node.registered"
    assert await register("2-0") == b"duplicate"
    assert await append(scripts, "3-0", "corroborated", "h2", "c1") == b"alert.corroborated"
    feed = await redis.xrange(KEYS.feed("s"))
    assert [(i, f[b"type"], f[b"seq"]) for i, f in feed] == [
        (b"1-0", b"alert.created", b"1"),
        (b"2-0", b"node.registered", b"2"),
        (b"3-0", b"alert.corroborated", b"3"),
    ]
    assert feed[1][1] == {
        b"type": b"node.registered",
        b"node": node.encode(),
        b"occurred_at": b"t",
        b"seq": b"2",
    }
    state = await redis.hkeys(KEYS.feed_state("s"))
    assert sorted(k for k in state if k.startswith((b"c:", b"h:"))) == [b"c:c1", b"h:h1", b"h:h2"]
    await redis.aclose()

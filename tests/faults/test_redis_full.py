"""Redis at its maxmemory (noeviction) under a real hub process, while posts, batches,
subscription creations and feed reads run concurrently and a webhook backlog is being fanned out
and delivered: writes get 503 (never 500) while reads of what is stored go on, nothing is
half-written, and once memory is raised again every refused post is created on retry and the
fan-out catches up.

(tests/test_unavailable.py keeps the single-post, in-process version of this case.)"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import unique_threat
from tests.faults.redis_checks import (
    CONCURRENCY,
    Setup,
    backlog_in_delivery,
    check_everything,
    make_alert,
    post_each,
)
from tests.faults.redis_harness import (
    KEYS,
    Answer,
    HubClient,
    Load,
    OwnRedis,
    log_entries,
    wait_for,
)
from tests.receivers import Receiver

BATCH = 10


@dataclass
class SideLoad:
    """Batches, subscription creations and feed reads, one loop each, beside the posts."""

    client: HubClient
    setup: Setup
    batches: list[tuple[list[dict[str, Any]], Answer]] = field(default_factory=list)
    subscriptions: list[Answer] = field(default_factory=list)
    reads: list[Answer] = field(default_factory=list)
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> SideLoad:
        self._tasks = [
            asyncio.create_task(self._loop(self._batch)),
            asyncio.create_task(self._loop(self._batch)),
            asyncio.create_task(self._loop(self._subscribe)),
            asyncio.create_task(self._loop(self._read)),
        ]
        return self

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def _loop(self, step: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping.is_set():
            await step()
            await asyncio.sleep(0.02)

    async def _batch(self) -> None:
        n = next(self._numbers)
        alerts = [unique_threat(f"b-{n}-{i}", severity="critical") for i in range(BATCH)]
        answer = await self.client.request(
            "POST", "/v1/alerts/batch", "al-cert", {"alerts": alerts}
        )
        self.batches.append((alerts, answer))

    async def _subscribe(self) -> None:
        body = {"filter": {"kinds": ["threat"]}, "delivery": {"type": "pull"}}
        self.subscriptions.append(
            await self.client.request("POST", "/v1/subscriptions", "rs-cert", body)
        )

    async def _read(self) -> None:
        """A page of the feed, and the alert its first event names, as a partner reads them."""
        path = f"/v1/subscriptions/{self.setup.everything}/feed?limit=100"
        page = await self.client.request("GET", path, "al-cert")
        self.reads.append(page)
        if page.ok and page.body["events"]:
            hub_id = page.body["events"][0]["hub_id"]
            self.reads.append(await self.client.request("GET", f"/v1/alerts/{hub_id}", "al-cert"))


def assert_unavailable(answer: Answer) -> None:
    assert answer.status == 503, answer
    assert answer.body["error"] == "unavailable" and isinstance(answer.body["message"], str)


def refused_batch_alerts(batches: list[tuple[list[dict[str, Any]], Answer]]) -> list[dict]:
    """The alerts of batches that were refused whole (503) or alert by alert (`unavailable`);
    a batch answers one or the other, never 500."""
    refused = []
    for alerts, answer in batches:
        if answer.status == 503:
            assert_unavailable(answer)
            refused += alerts
            continue
        assert answer.status == 200, answer
        for alert, result in zip(alerts, answer.body["results"], strict=True):
            if result["status"] == "rejected":
                assert result["error"]["error"] == "unavailable", result
                refused.append(alert)
    return refused


async def check_nothing_half_written(redis: Redis) -> int:
    """Straight from Redis, while it is full: every alert record is whole (document, sharing,
    sender-id entry, carrier of its fingerprint, listed in `recent`, exactly one log entry,
    counted once); no record without the rest; no feed entry without its alert. Returns the
    stored count."""
    recent = {m.decode() for m in await redis.zrange(KEYS.recent, 0, -1)}
    records = {k.decode().rsplit(":", 1)[1] async for k in redis.scan_iter(KEYS.alert("*"))}
    assert records == recent
    logged = Counter(f["hub_id"] for _, f in await log_entries(redis))
    assert logged == Counter(recent)
    sender_ids = {v.decode() for v in (await redis.hgetall(KEYS.sender_ids)).values()}
    assert sender_ids == recent
    for hub_id in recent:
        doc, meta, fingerprint = await redis.hmget(KEYS.alert(hub_id), "doc", "meta", "fingerprint")
        assert doc and meta and fingerprint, hub_id
        carriers = KEYS.fingerprint_reports(fingerprint.decode())
        assert await redis.zscore(carriers, hub_id) is not None, hub_id
    counts = await redis.hgetall(KEYS.ingest_counts)
    assert int(counts.get(b"created", 0)) == len(recent)
    subs = [s.decode() for s in await redis.hkeys(KEYS.subscriptions)]
    for sub_id in subs:
        for _, entry in await redis.xrange(KEYS.feed(sub_id)):
            assert entry[b"hub_id"].decode() in recent
    return len(recent)


@pytest.mark.timeout(120)
async def test_redis_at_maxmemory_under_load(
    store: OwnRedis, client: HubClient, redis: Redis, receivers: list[Receiver]
) -> None:
    """maxmemory under concurrent posts, batches, subscription creations, feed reads and a
    webhook backlog: writes 503 not 500, reads 200, nothing half-written, and every refused
    alert is created on retry once memory is raised, with the fan-out catching up exactly once."""
    receiver, setup, stored = await backlog_in_delivery(client, receivers, 300)
    await redis.config_set("maxmemory-policy", "noeviction")
    used = (await redis.info("memory"))["used_memory"]
    await redis.config_set("maxmemory", used // 2)
    store.faults += 1
    full_since = time.monotonic()
    delivered_when_full = len({d.event["hub_id"] for d in receiver.deliveries})

    posts = Load(client, lambda n: make_alert(1000 + n), CONCURRENCY)
    side = SideLoad(client, setup).start()

    async def enough() -> bool:
        return (
            len(posts.attempts) >= 200
            and len(side.batches) >= 5
            and len(side.subscriptions) >= 5
            and len(side.reads) >= 10
        )

    await wait_for(enough, 30.0, "requests while Redis is full")
    await posts.stop()
    await side.stop()
    stored_when_full = await check_nothing_half_written(redis)
    assert stored_when_full == len(stored), "an alert was stored while Redis was full"

    await redis.config_set("maxmemory", 0)
    await wait_for(client.ready, 10.0, "readyz 200 after memory was raised")
    for attempt in posts.attempts:
        assert attempt.answer.started >= full_since
        assert_unavailable(attempt.answer)
    for answer in side.subscriptions:
        assert_unavailable(answer)
    # Reads go on while Redis refuses writes: partners still get what is stored.
    read_statuses = Counter(a.status for a in side.reads)
    assert set(read_statuses) == {200}, read_statuses

    # Every refusal stored nothing: the same alert again is created, not unchanged.
    retried = [(a.node, a.alert) for a in posts.attempts]
    retried += [("al-cert", alert) for alert in refused_batch_alerts(side.batches)]
    answers = await post_each(client, retried)
    for (node, alert), answer in zip(retried, answers, strict=True):
        assert (answer.status, answer.body["status"]) == (201, "created"), answer
        stored[alert["id"]] = (node, answer.body["hub_id"])
    subs = (await client.ok("GET", "/v1/subscriptions", "operator"))["subscriptions"]
    assert len(subs) == 3, "a subscription refused with 503 exists"
    await client.subscribe("rs-cert", {"kinds": ["threat"]})

    critical = {
        h for a, (_, h) in stored.items() if a.startswith("b-") or int(a.split("-")[1]) % 3 == 0
    }
    repeats = await check_everything(client, redis, setup, stored, critical)
    print(
        f"\n[redis-full] faults={store.faults} delivered-when-full={delivered_when_full}/300"
        f" posts={len(posts.attempts)} batches={len(side.batches)}"
        f" subscriptions={len(side.subscriptions)} reads={dict(read_statuses)}"
        f" retried={len(retried)} requests={client.made} failed={client.failed}"
        f" webhook-repeats={repeats}"
    )

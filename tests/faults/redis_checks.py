"""Shared by the Redis fault tests: the alerts of a load, the nodes and subscriptions they go
to, and the checks every such test ends with: each stored alert readable, logged once, and in
each matching feed exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from tests.conftest import unique_threat
from tests.faults.redis_harness import KEYS, Answer, Attempt, HubClient, log_entries, wait_for
from tests.receivers import Receiver

CONCURRENCY = 24
PUBLISHERS = ("al-cert", "rs-cert")
FAN_OUT_S = 30.0


def make_alert(n: int) -> tuple[str, dict[str, Any]]:
    """The n-th alert of a load: new content, every third one critical."""
    severity = "critical" if n % 3 == 0 else "low"
    return PUBLISHERS[n % 2], unique_threat(f"k-{n}", severity=severity)


class SlowReceiver(Receiver):
    """A webhook endpoint that takes a few milliseconds per event, so delivery is still busy
    when Redis dies."""

    async def _handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.003)
        return await super()._handle(request)


class Setup:
    """Two publishing nodes; a pull subscription to everything, a narrower pull subscription
    (critical only) and a webhook subscription to everything, each verified before any alert."""

    def __init__(self, client: HubClient, receiver: Receiver) -> None:
        self.client = client
        self.receiver = receiver
        self.everything = self.critical = self.hook = ""

    async def create(self) -> Setup:
        await self.client.add_node("al-cert", "AL")
        await self.client.add_node("rs-cert", "RS")
        self.everything = await self.client.subscribe("al-cert", {})
        self.critical = await self.client.subscribe("rs-cert", {"min_severity": "critical"})
        self.hook = await self.client.subscribe(
            "rs-cert", {}, {"type": "webhook", "url": self.receiver.url}
        )

        async def active() -> bool:
            sub = await self.client.ok("GET", f"/v1/subscriptions/{self.hook}", "rs-cert")
            return sub["status"] == "active"

        await wait_for(active, 10.0, "the webhook's verification")
        return self


async def post_each(
    client: HubClient, posts: list[tuple[str, dict[str, Any]]], concurrency: int = CONCURRENCY
) -> list[Answer]:
    """Post each (sender, alert), `concurrency` at a time; the answers in the same order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(node: str, alert: dict[str, Any]) -> Answer:
        async with gate:
            return await client.post(node, alert)

    return await asyncio.gather(*(one(node, alert) for node, alert in posts))


async def repeat_all(client: HubClient, attempts: list[Attempt]) -> list[Answer]:
    """Post each attempt's alert again, as its sender (same id, same revision)."""
    return await post_each(client, [(a.node, a.alert) for a in attempts])


async def check_readable(client: HubClient, stored: dict[str, tuple[str, str]]) -> None:
    """GET /v1/alerts/{hub_id} answers each stored alert, as its sender sent it."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def read(alert_id: str, node: str, hub_id: str) -> None:
        async with gate:
            alert = await client.ok("GET", f"/v1/alerts/{hub_id}", node)
        assert (alert["id"], alert["sender"], alert["hub_id"]) == (alert_id, node, hub_id)

    await asyncio.gather(*(read(a, n, h) for a, (n, h) in stored.items()))


async def check_log(redis: Redis, hub_ids: set[str]) -> None:
    """One `created` event per stored alert and nothing else; one record and one sender-id
    entry each."""
    entries = await log_entries(redis)
    logged = Counter((f["type"], f["hub_id"]) for _, f in entries)
    assert logged == Counter({("created", h): 1 for h in hub_ids})
    assert await redis.zcard(KEYS.recent) == len(hub_ids)
    assert await redis.hlen(KEYS.sender_ids) == len(hub_ids)


async def check_feed_once(
    client: HubClient, owner: str, sub_id: str, expected: set[str]
) -> list[dict[str, Any]]:
    """Once fan-out has caught up, the pull feed holds each expected alert exactly once, as
    `alert.created`, and nothing else."""
    events: list[dict[str, Any]] = []

    async def caught_up() -> bool:
        nonlocal events
        events = await client.feed(owner, sub_id)
        return len(events) >= len(expected)

    await wait_for(caught_up, FAN_OUT_S, f"fan-out into {sub_id}", interval=0.2)
    assert Counter(e["hub_id"] for e in events) == Counter(expected)
    assert {e["type"] for e in events} == {"alert.created"}
    return events


async def check_webhook(redis: Redis, receiver: Receiver, sub_id: str, expected: set[str]) -> int:
    """Every alert reached the endpoint at least once and sits in its feed exactly once.
    Returns how many deliveries were repeats (at-least-once, dropped by webhook-id)."""

    async def all_delivered() -> bool:
        return expected <= {d.event["hub_id"] for d in receiver.deliveries}

    await wait_for(all_delivered, FAN_OUT_S, "webhook deliveries", interval=0.2)
    feed = await redis.xrange(KEYS.feed(sub_id))
    assert Counter(f[b"hub_id"].decode() for _, f in feed) == Counter(expected)
    ids = [d.headers["webhook-id"] for d in receiver.deliveries]
    return len(ids) - len(set(ids))


async def check_everything(
    client: HubClient,
    redis: Redis,
    setup: Setup,
    stored: dict[str, tuple[str, str]],
    critical: set[str],
) -> int:
    """What every fault test here ends with; returns the webhook's repeated deliveries."""
    hub_ids = {h for _, h in stored.values()}
    assert len(hub_ids) == len(stored), "two alerts share a hub id"
    await check_readable(client, stored)
    await check_log(redis, hub_ids)
    await check_feed_once(client, "al-cert", setup.everything, hub_ids)
    await check_feed_once(client, "rs-cert", setup.critical, critical)
    return await check_webhook(redis, setup.receiver, setup.hook, hub_ids)


async def post_all(client: HubClient, numbers: range) -> dict[str, tuple[str, str]]:
    """Post the alerts `numbers` of make_alert concurrently; each must be created.
    Returns alert id -> (sender, hub id)."""
    posts = [make_alert(n) for n in numbers]
    answers = await post_each(client, posts)
    for answer in answers:
        assert answer.status == 201 and answer.body["status"] == "created", answer
    return {a["id"]: (node, r.body["hub_id"]) for (node, a), r in zip(posts, answers, strict=True)}


async def backlog_in_delivery(
    client: HubClient, receivers: list[Receiver], count: int
) -> tuple[SlowReceiver, Setup, dict[str, tuple[str, str]]]:
    """A slow webhook and the subscriptions of Setup, `count` alerts posted, and returned once
    40 have reached the webhook: a backlog is being fanned out and delivered when a fault hits.
    Returns the receiver, the setup and post_all's alert id -> (sender, hub id)."""
    receiver = await SlowReceiver().start()
    receivers.append(receiver)
    setup = await Setup(client, receiver).create()
    stored = await post_all(client, range(count))

    async def delivering() -> bool:
        return len(receiver.deliveries) >= 40

    await wait_for(delivering, 20.0, "webhook deliveries under way")
    return receiver, setup, stored

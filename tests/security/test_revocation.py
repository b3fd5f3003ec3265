"""Revoking a node stops everything it receives at once, on every hub process: its open event
streams end, fan-out appends nothing more to its feeds, and webhook delivery to it stops even in
the middle of a batch (API.md: "the token stops working at once"; issue 15, finding 6).

Two hub apps share one Redis, as two processes of one deployment do: the node is revoked
through one of them while it is served by the other."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.keys import Keys
from tests.conftest import Api, unique_threat
from tests.delivery.test_webhooks import wait_status, webhook
from tests.receivers import Receiver
from tests.security.tally import refused
from tests.sse_client import SseReader

KEYS = Keys()
# A heartbeat far longer than the bound: a stream that ends within the bound was ended by the
# revocation message, not by the check before a heartbeat.
LONG_HEARTBEAT_S = 60.0
ENDS_WITHIN_S = 3.0


@dataclasses.dataclass
class Hubs:
    a: Api
    b: Api


async def two_hubs(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet
) -> AsyncIterator[Hubs]:
    a = Api(await aiohttp_client(create_app(settings, schema_set)))
    b = Api(await aiohttp_client(create_app(settings, schema_set)))
    yield Hubs(a, b)


@pytest.fixture
async def hubs(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet
) -> AsyncIterator[Hubs]:
    """Two hub apps on one Redis, with a heartbeat far longer than any bound below."""
    settings = dataclasses.replace(delivery_settings, sse_heartbeat_s=LONG_HEARTBEAT_S)
    async for pair in two_hubs(aiohttp_client, settings, schema_set):
        yield pair


@pytest.fixture
async def quick_hubs(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet
) -> AsyncIterator[Hubs]:
    """Two hub apps on one Redis with the delivery tests' quick heartbeat (0.3 s)."""
    async for pair in two_hubs(aiohttp_client, delivery_settings, schema_set):
        yield pair


async def add_node(hubs: Hubs, node_id: str, country: str, roles: tuple[str, ...]) -> None:
    """Registered through hub A; hub B learns the token too."""
    await hubs.a.add_node(node_id, country, roles=roles)
    hubs.b.tokens[node_id] = hubs.a.tokens[node_id]


async def open_stream(api: Api, node: str, sub_id: str) -> SseReader:
    resp = await api.client.get(
        f"/v1/subscriptions/{sub_id}/events",
        headers={**api.auth(node), "Accept": "text/event-stream"},
    )
    assert resp.status == 200, await resp.text()
    reader = SseReader(resp)
    assert "retry" in await reader.next_frame()  # the stream is up and listening
    return reader


async def seconds_to_end(reader: SseReader, within: float) -> float | None:
    """How long until the stream ends (None: still open after `within` seconds)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(within):
            while True:
                await reader.next_frame(within)
    except EOFError:
        return time.monotonic() - started
    except TimeoutError:
        return None


async def revoke(api: Api, node: str) -> None:
    resp = await api.client.delete(f"/v1/nodes/{node}", headers=api.auth("operator"))
    assert resp.status == 204, await resp.text()


async def test_revocation_ends_the_nodes_stream_on_another_process_at_once(hubs: Hubs) -> None:
    """A node's SSE stream open on hub B ends within seconds (the heartbeat is a minute) when
    the node is revoked through hub A, and the token then opens no stream."""
    await add_node(hubs, "rs-x", "RS", ("subscribe",))
    sub = await hubs.b.subscribe("rs-x")
    reader = await open_stream(hubs.b, "rs-x", sub["id"])
    await revoke(hubs.a, "rs-x")
    took = await seconds_to_end(reader, ENDS_WITHIN_S)
    refused("revocation: open stream ended")
    assert took is not None, f"the stream was still open {ENDS_WITHIN_S} s after revocation"
    resp = await hubs.b.client.get(
        f"/v1/subscriptions/{sub['id']}/events", headers=hubs.b.auth("rs-x")
    )
    refused("revocation: stream reopened")
    assert resp.status == 401


async def test_operators_stream_of_a_revoked_owners_feed_ends_too(hubs: Hubs) -> None:
    """An operator's stream of a partner's feed ends when the partner is revoked: the stream
    serves the owner's subscription, which delivers nothing any more."""
    await add_node(hubs, "rs-x", "RS", ("subscribe",))
    sub = await hubs.b.subscribe("rs-x")
    reader = await open_stream(hubs.b, "operator", sub["id"])
    await revoke(hubs.a, "rs-x")
    assert await seconds_to_end(reader, ENDS_WITHIN_S) is not None


async def test_a_missed_revocation_message_still_ends_the_stream_by_the_next_heartbeat(
    quick_hubs: Hubs, redis_url: str
) -> None:
    """A stream whose process never heard the revocation (the record changed without the
    message, as when the pub/sub connection was down) ends by its next heartbeat (0.3 s)."""
    await add_node(quick_hubs, "rs-x", "RS", ("subscribe",))
    sub = await quick_hubs.b.subscribe("rs-x")
    reader = await open_stream(quick_hubs.b, "rs-x", sub["id"])
    client = redis.Redis.from_url(redis_url)
    try:
        client.hset(KEYS.node("rs-x"), "revoked_at", "2026-12-01T00:00:00Z")
    finally:
        client.close()
    refused("revocation: open stream ended")
    assert await seconds_to_end(reader, ENDS_WITHIN_S) is not None


def feed_hub_ids(redis_url: str, sub_id: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [f[b"hub_id"].decode() for _, f in client.xrange(KEYS.feed(sub_id))]
    finally:
        client.close()


async def test_an_alert_posted_after_revocation_reaches_no_feed_nor_webhook_of_the_node(
    hubs: Hubs, receivers: list[Receiver], redis_url: str
) -> None:
    """Fan-out stops at once: an alert posted right after the revocation is fanned out to a
    live node's feed, and to neither the revoked node's pull feed nor its webhook."""
    await add_node(hubs, "al-pub", "AL", ("publish",))
    await add_node(hubs, "rs-x", "RS", ("subscribe",))
    await add_node(hubs, "me-y", "ME", ("subscribe",))
    receiver = await Receiver().start()
    receivers.append(receiver)
    pull = await hubs.b.subscribe("rs-x")
    hook = await webhook(hubs.b, "rs-x", receiver)
    control = await hubs.b.subscribe("me-y")
    await wait_status(hubs.b, "rs-x", hook["id"], "active")
    status, before = await hubs.b.post("al-pub", unique_threat("before"))
    assert status == 201, before
    await receiver.wait_for(lambda r: len(r.deliveries) == 1)
    await revoke(hubs.a, "rs-x")
    status, after = await hubs.b.post("al-pub", unique_threat("after"))
    assert status == 201, after
    got = await hubs.b.wait_for_feed("me-y", control["id"], 2, last=after["hub_id"])
    assert [e["hub_id"] for e in got] == [before["hub_id"], after["hub_id"]]
    refused("revocation: fan-out after revocation", 2)
    assert feed_hub_ids(redis_url, pull["id"]) == [before["hub_id"]]
    assert feed_hub_ids(redis_url, hook["id"]) == [before["hub_id"]]
    assert [d.event["hub_id"] for d in receiver.deliveries] == [before["hub_id"]]


async def set_status(api: Api, node: str, sub_id: str, status: str) -> None:
    resp = await api.client.patch(
        f"/v1/subscriptions/{sub_id}", json={"status": status}, headers=api.auth(node)
    )
    assert resp.status == 200, await resp.text()


async def test_webhook_delivery_stops_at_revocation_in_the_middle_of_a_batch(
    hubs: Hubs, receivers: list[Receiver], redis_url: str
) -> None:
    """Events already in a webhook's feed, read as one batch whose first POST is under way
    when the owner is revoked, are not sent after it: the owner is asked before each send."""
    await add_node(hubs, "al-pub", "AL", ("publish",))
    await add_node(hubs, "rs-x", "RS", ("subscribe",))
    receiver = await Receiver(hang=True).start()
    receivers.append(receiver)
    hook = await webhook(hubs.b, "rs-x", receiver)
    await wait_status(hubs.b, "rs-x", hook["id"], "active")
    # Paused while the three are fanned out, so that its worker reads them as one batch (fan-out
    # may append them in two steps, and a worker awake meanwhile would read the first alone).
    await set_status(hubs.b, "rs-x", hook["id"], "paused")
    alerts = [unique_threat(f"batched-{n}") for n in range(3)]
    resp = await hubs.b.client.post(
        "/v1/alerts/batch", json={"alerts": alerts}, headers=hubs.b.auth("al-pub")
    )
    assert resp.status == 200, await resp.text()
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 10.0
        while client.xlen(KEYS.feed(hook["id"])) < 3:
            assert time.monotonic() < deadline, "the feed never held the three alerts"
            await asyncio.sleep(0.02)
    finally:
        client.close()
    await set_status(hubs.b, "rs-x", hook["id"], "active")
    await receiver.wait_for(lambda r: len(r.deliveries) == 1)
    await revoke(hubs.a, "rs-x")
    receiver.release()
    client = redis.Redis.from_url(redis_url)
    try:
        last = client.xrevrange(KEYS.feed(hook["id"]), count=1)[0][0]
        assert len(client.xrange(KEYS.feed(hook["id"]))) == 3
        deadline = time.monotonic() + 10.0
        while client.hget(KEYS.delivery(hook["id"]), "cursor") != last:
            assert time.monotonic() < deadline, "the webhook worker never finished its batch"
            await asyncio.sleep(0.02)
    finally:
        client.close()
    refused("revocation: webhook sends after revocation", 2)
    assert len(receiver.deliveries) == 1

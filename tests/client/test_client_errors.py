"""Every error answer becomes its typed exception carrying the API's error body, each provoked
for real on a hub with real Redis; answers not in the API's shape and no answer at all too."""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from alerthub_client import (
    Conflict,
    Forbidden,
    HistoryTruncated,
    HubClient,
    HubError,
    HubUnreachable,
    MalformedJSON,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from alerthub_client.errors import parse_retry_after
from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.embedded import RedisServer, free_port, start_redis_server
from tests.client.hubs import client_for, hub_url, until
from tests.client.tcp_proxy import TcpProxy
from tests.conftest import Api, unique_threat


async def hub_with(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet, **changes: Any
) -> Api:
    """An Api on a hub with `settings` changed by `changes`."""
    app = create_app(dataclasses.replace(settings, **changes), schema_set)
    return Api(await aiohttp_client(app))


async def test_400_401_403_404_409_415_422(dapi: Api) -> None:
    """Each refusal of the real hub raises its class with status, error, message and body."""
    await dapi.add_node("al-cert", "AL")
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    async with client_for(dapi, "al-cert") as hub, client_for(dapi, "fc-ba") as reader:
        json_headers = {"Content-Type": "application/json"}
        with pytest.raises(MalformedJSON) as bad:
            await hub.request("POST", "/v1/alerts", data=b'{"id": ', headers=json_headers)
        assert (bad.value.status, bad.value.error) == (400, "malformed_json")
        assert bad.value.body["error"] == "malformed_json" and bad.value.message
        assert str(bad.value).startswith("400 malformed_json: ")

        async with HubClient(hub_url(dapi), "not-a-token") as stranger:
            with pytest.raises(Unauthenticated) as unauth:
                await stranger.list_alerts()
        assert (unauth.value.status, unauth.value.error) == (401, "unauthenticated")

        with pytest.raises(Forbidden) as forbidden:
            await reader.post_alert(unique_threat("f-1"))  # no publish role
        assert (forbidden.value.status, forbidden.value.error) == (403, "forbidden")

        with pytest.raises(NotFound) as missing:
            await hub.get_alert("01J0000000000000000000000Z")
        assert (missing.value.status, missing.value.error) == (404, "not_found")

        await hub.post_alert(unique_threat("c-1", revision=2))
        with pytest.raises(Conflict) as conflict:
            await hub.post_alert(unique_threat("c-1", revision=1))
        assert (conflict.value.status, conflict.value.error) == (409, "conflict")

        with pytest.raises(UnsupportedMediaType) as media:
            await hub.request(
                "POST", "/v1/alerts", data=b"{}", headers={"Content-Type": "text/plain"}
            )
        assert media.value.status == 415 and "text/plain" in media.value.message

        with pytest.raises(ValidationFailed) as invalid:
            await hub.post_alert({"id": "v-1", "kind": "threat", "surprise": 1})
        assert (invalid.value.status, invalid.value.error) == (422, "validation_failed")
        pointers = {d["pointer"] for d in invalid.value.details}
        assert "/surprise" in pointers or "" in pointers, invalid.value.details
        assert len(invalid.value.details) >= 2 and invalid.value.body["details"]


async def test_410_for_a_cursor_and_an_sse_resume_point_that_left_the_feed(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet
) -> None:
    """With a feed of 3, pull(after=<the first>) raises HistoryTruncated, and so does events()
    resumed from it; events() started afresh reads on from the oldest held."""
    api = await hub_with(aiohttp_client, delivery_settings, schema_set, feed_retention=3)
    await api.add_node("al-cert", "AL")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    async with client_for(api, "al-cert") as pub, client_for(api, "fc-ba") as hub:
        sub = (await hub.subscribe())["id"]
        first_id = (await pub.post_alert(unique_threat("h-0")))["hub_id"]
        first = await until(lambda: hub.pull(sub), lambda p: len(p.items) == 1)
        assert first.items[0]["hub_id"] == first_id
        hub_ids = [(await pub.post_alert(unique_threat(f"h-{i}")))["hub_id"] for i in range(1, 6)]
        await until(lambda: hub.pull(sub), lambda p: p.items[-1]["hub_id"] == hub_ids[-1])

        with pytest.raises(HistoryTruncated) as gone:
            await hub.pull(sub, after=first.next)
        assert (gone.value.status, gone.value.error) == (410, "history_truncated")

        with pytest.raises(HistoryTruncated) as cut:
            async with aclosing(hub.events(sub, last_event_id=first.next)) as events:
                async for _ in events:
                    raise AssertionError("an event before the history-truncated warning")
        assert cut.value.status == 410 and cut.value.body["after"] == first.next

        held = []
        async with aclosing(hub.events(sub)) as events:
            async for event in events:
                held.append(event.data["hub_id"])
                if len(held) == 3:
                    break
        assert held == hub_ids[2:]


async def test_413_over_the_body_limit(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet
) -> None:
    """An alert over max_body_bytes raises PayloadTooLarge."""
    api = await hub_with(aiohttp_client, settings, schema_set, max_body_bytes=1024)
    await api.add_node("al-cert", "AL")
    async with client_for(api, "al-cert") as hub:
        with pytest.raises(PayloadTooLarge) as big:
            await hub.post_alert(unique_threat("big", summary="x" * 2000))
        assert (big.value.status, big.value.error) == (413, "payload_too_large")


async def test_429_with_retry_after(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet
) -> None:
    """Over the node's rate, RateLimited carries Retry-After in seconds (to the next minute)."""
    api = await hub_with(aiohttp_client, settings, schema_set, rate_limit_per_minute=2)
    await api.add_node("al-cert", "AL")
    async with client_for(api, "al-cert") as hub:
        with pytest.raises(RateLimited) as limited:
            # At most 2 per minute window, and these few posts span two windows at most.
            for i in range(6):
                await hub.post_alert(unique_threat(f"r-{i}"))
        assert (limited.value.status, limited.value.error) == (429, "rate_limited")
        assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 60

        # A batch refused whole, with no waiting allowed, raises and says which alerts were
        # stored before it (by default it would wait for the next minute and send again).
        with pytest.raises(RateLimited) as batch:
            await hub.post_alerts([unique_threat("rb-0")], retry_for_s=0)
        assert batch.value.partial_results == []


async def test_sse_429_is_waited_out(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet
) -> None:
    """With one stream allowed per node, events() on a second one backs off on 429 and
    connects once the first stream closes."""
    api = await hub_with(aiohttp_client, delivery_settings, schema_set, max_sse_per_node=1)
    await api.add_node("al-cert", "AL")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    async with client_for(api, "al-cert") as pub, client_for(api, "fc-ba") as hub:
        sub = (await hub.subscribe())["id"]
        hub_id = (await pub.post_alert(unique_threat("s-1")))["hub_id"]
        first = hub.events(sub)
        assert (await anext(first)).data["hub_id"] == hub_id  # holds the only slot

        proxy = await TcpProxy(api.client.host, api.client.port).start()
        try:
            waiting = asyncio.create_task(second_stream(client_for(api, "fc-ba", proxy.url), sub))
            # Refused (429) and tried again: two requests, and still waiting.
            await proxy.wait_for(lambda p: len(p.requests()) >= 2)
            assert not waiting.done()
            await first.aclose()
            assert await asyncio.wait_for(waiting, 10) == hub_id
        finally:
            await proxy.stop()


async def second_stream(hub: HubClient, sub: str) -> str:
    """The hub id of the first event a new events() iteration gives."""
    async with hub, aclosing(hub.events(sub)) as events:
        async for event in events:
            return event.data["hub_id"]
    raise AssertionError("the stream ended")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path / "redis", port=free_port())
    yield server
    server.stop()


async def test_503_when_redis_is_down_and_events_resume_after(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet, own_redis: RedisServer
) -> None:
    """With the hub's Redis stopped: Unavailable (Retry-After 1) and ready() False; events()
    started meanwhile keeps retrying and delivers once Redis is back."""
    api = await hub_with(aiohttp_client, delivery_settings, schema_set, redis_url=own_redis.url)
    await api.add_node("al-cert", "AL")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    async with client_for(api, "al-cert") as pub, client_for(api, "fc-ba") as hub:
        sub = (await hub.subscribe())["id"]
        own_redis.stop()
        with pytest.raises(Unavailable) as down:
            await pub.post_alert(unique_threat("u-1"))
        assert (down.value.status, down.value.error, down.value.retry_after) == (
            503,
            "unavailable",
            1.0,
        )
        assert await pub.ready() is False

        proxy = await TcpProxy(api.client.host, api.client.port).start()
        waiting = asyncio.create_task(second_stream(client_for(api, "fc-ba", proxy.url), sub))
        await proxy.wait_for(lambda p: len(p.requests()) >= 2)  # refused (503), tried again
        assert not waiting.done()
        port = int(own_redis.url.rsplit(":", 1)[1].split("/")[0])
        restarted = start_redis_server(own_redis.data_dir, port=port)
        try:
            assert await pub.ready() is True
            hub_id = (await pub.post_alert(unique_threat("u-1")))["hub_id"]
            done, _ = await asyncio.wait({waiting}, timeout=15)
            assert done, await why_no_event(api, sub, proxy)
            assert waiting.result() == hub_id
        finally:
            restarted.stop()
            await proxy.stop()


async def why_no_event(api: Api, sub: str, proxy: TcpProxy) -> str:
    """What a stream that got nothing was up against: the feed as pulled, the fan-out as the
    hub reports it, and the stream's requests (this failed once in CI, and passed alone)."""
    feed = [(e["type"], e["hub_id"]) for e in await api.feed("fc-ba", sub)]
    _, status = await api.get("operator", "/v1/status")
    return (
        f"no event on the stream; feed {feed}; fan-out {status.get('fanout')};"
        f" {len(proxy.requests())} stream requests, {len(proxy.links)} connections"
    )


async def test_unreachable_on_a_closed_port() -> None:
    """No answer at all (nothing listens) is HubUnreachable naming the address, from every
    kind of call, SSE's first connection included."""
    port = free_port()
    async with HubClient(f"http://127.0.0.1:{port}", "t", timeout_s=2) as hub:
        with pytest.raises(HubUnreachable) as no_answer:
            await hub.get_alert("x")
        assert no_answer.value.status == 0 and f"127.0.0.1:{port}" in str(no_answer.value)
        assert isinstance(no_answer.value, HubError)
        with pytest.raises(HubUnreachable):
            async with aclosing(hub.events("01J0000000000000000000000Z")) as events:
                async for _ in events:
                    pass
    with pytest.raises(ValueError):
        HubClient("127.0.0.1:8080")


@pytest.fixture
async def not_a_hub() -> AsyncIterator[str]:
    """A real HTTP server answering as a proxy or a bare HTTP layer would, not as the API."""

    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(
            status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>",
            content_type="text/html",
        )  # fmt: skip

    async def plain_400(request: web.Request) -> web.Response:
        return web.Response(status=400, text="400: Bad Request")

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy", headers={"Retry-After": "7"})

    app = web.Application()
    app.router.add_get("/v1/alerts/gateway", bad_gateway)
    app.router.add_get("/v1/alerts/plain", plain_400)
    app.router.add_get("/v1/alerts/busy", busy)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_answers_not_in_the_api_shape_still_raise_hub_errors(not_a_hub: str) -> None:
    """A proxy's HTML 502 and a plain-text 400 become HubErrors with a readable message; a 503
    is Unavailable whatever its body, with its Retry-After."""
    async with HubClient(not_a_hub) as hub:
        with pytest.raises(HubError) as gateway:
            await hub.get_alert("gateway")
        assert (gateway.value.status, gateway.value.error) == (502, "bad_gateway")
        assert "502 Bad Gateway" in gateway.value.message and "<" not in gateway.value.error
        with pytest.raises(HubError) as plain:
            await hub.get_alert("plain")
        assert type(plain.value) is HubError and plain.value.status == 400
        assert plain.value.error == "bad_request" and "Bad Request" in plain.value.message
        with pytest.raises(Unavailable) as busy:
            await hub.get_alert("busy")
        assert busy.value.retry_after == 7.0 and busy.value.body["error"] == "service_unavailable"


def test_retry_after_as_seconds_or_an_http_date() -> None:
    """Retry-After is read in both forms RFC 9110 allows; junk gives None."""
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_errors_survive_pickling() -> None:
    """A typed error crosses a process boundary (a process pool) whole."""
    error = pickle.loads(pickle.dumps(RateLimited(429, "rate_limited", "slow", retry_after=3)))
    assert type(error) is RateLimited and (error.status, error.retry_after) == (429, 3)
    assert str(pickle.loads(pickle.dumps(HubUnreachable("gone")))) == "0 unreachable: gone"

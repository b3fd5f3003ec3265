"""The client's SSE: the pure parser (any chunking, LF / CR / CRLF, multi-line data, comments,
ids), and events() resuming through a real loopback proxy that cuts the connection mid-stream."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from aiohttp import web

from alerthub_client import Event, HubClient, Unauthenticated
from alerthub_client.client import Backoff
from alerthub_client.sse import SseComment, SseMessage, SseParser, SseProtocolError
from hub.store.embedded import free_port
from tests.client.hubs import client_for
from tests.client.tcp_proxy import TcpProxy
from tests.conftest import Api, unique_threat

STREAM = (
    b"\xef\xbb\xbfretry: 2000\n\n"
    b": heartbeat\n\n"
    b'id: 1-0\nevent: alert.created\ndata: {"a":1}\n\n'
    b"id: 2-0\r\nevent: alert.updated\r\ndata: line one\r\ndata: line two\r\n\r\n"
    b"data:no space\rdata\r\r"
    b"event: empty\nid: 3-0\n\n"  # no data: not dispatched, but the id counts
    b"unknown: field\ndata: {}\n\n"
)
EXPECTED = [
    SseComment("heartbeat"),
    SseMessage("alert.created", '{"a":1}', "1-0"),
    SseMessage("alert.updated", "line one\nline two", "2-0"),
    SseMessage("message", "no space\n", "2-0"),
    SseMessage("message", "{}", "3-0"),
]


def test_parser_whole_stream() -> None:
    """Fields, comments, multi-line data, an empty data line, all three line ends, a BOM."""
    parser = SseParser()
    assert parser.feed(STREAM) == EXPECTED
    assert parser.retry_ms == 2000 and parser.last_event_id == "3-0"


def test_parser_any_chunking() -> None:
    """The same items whatever the split: one byte at a time, and at every position in two
    (a CRLF split between chunks is one line end, not two)."""
    one_by_one = SseParser()
    items = [item for i in range(len(STREAM)) for item in one_by_one.feed(STREAM[i : i + 1])]
    assert items == EXPECTED
    for cut in range(len(STREAM) + 1):
        parser = SseParser()
        assert parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:]) == EXPECTED, cut


def test_parser_lines_and_limits() -> None:
    """feed_line takes lines already split; a runaway line or message is refused."""
    parser = SseParser()
    assert parser.feed_line("id: 9-0") is None and parser.feed_line("data: x") is None
    assert parser.feed_line("") == SseMessage("message", "x", "9-0")
    assert parser.feed_line(":") == SseComment("")
    small = SseParser(max_pending_bytes=16)
    with pytest.raises(SseProtocolError):
        small.feed(b"data: " + b"x" * 32)
    with pytest.raises(SseProtocolError):
        for _ in range(5):
            small.feed(b"data: 12345\n")


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    """Reconnection delays: 0.1 s doubling to 5 s, back to 0.1 s after a good connection."""
    backoff = Backoff(0.1, 5.0)
    assert [backoff.next() for _ in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 0.1


async def setup(api: Api) -> str:
    await api.add_node("al-cert", "AL")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    return (await api.subscribe("fc-ba"))["id"]


async def test_resume_after_cuts_mid_stream_no_gap_no_repeat(dapi: Api) -> None:
    """Through a proxy that cuts every connection twice (RST, then FIN) while alerts are still
    being posted, events() reconnects with Last-Event-ID = the last id it gave and yields
    exactly the posted alerts, in order, each once."""
    sub = await setup(dapi)
    proxy = await TcpProxy(dapi.client.host, dapi.client.port).start()
    total = 40
    received: list[Event] = []
    got_some = asyncio.Event()
    enough_for_cut: list[int] = [8, 24]

    async def consume() -> None:
        async with client_for(dapi, "fc-ba", proxy.url) as hub, aclosing(hub.events(sub)) as events:
            async for event in events:
                received.append(event)
                if enough_for_cut and len(received) >= enough_for_cut[0]:
                    enough_for_cut.pop(0)
                    got_some.set()
                if len(received) == total:
                    return

    async def post_all() -> list[str]:
        async with client_for(dapi, "al-cert") as pub:
            hub_ids = []
            for i in range(total):
                hub_ids.append((await pub.post_alert(unique_threat(f"s-{i}")))["hub_id"])
                await asyncio.sleep(0.005)  # a steady trickle, so cuts fall mid-stream
            return hub_ids

    consumer = asyncio.create_task(consume())
    poster = asyncio.create_task(post_all())
    try:
        for abort in (True, False):
            await asyncio.wait_for(got_some.wait(), 10)
            got_some.clear()
            assert not poster.done(), "the cut should fall while alerts are still posted"
            assert proxy.cut_all(abort=abort) == 1
        hub_ids = await asyncio.wait_for(poster, 20)
        await asyncio.wait_for(consumer, 20)
    finally:
        consumer.cancel()
        poster.cancel()
        await proxy.stop()

    assert [e.data["hub_id"] for e in received] == hub_ids  # no gap, no repeat, in order
    assert len({e.id for e in received}) == total
    heads = proxy.requests(b"GET /v1/subscriptions/")
    assert len(heads) >= 3 and proxy.connections >= 3
    assert b"last-event-id" not in heads[0].lower()
    ids = {e.id.encode() for e in received}
    for head in heads[1:]:
        resume = [h for h in head.split(b"\r\n") if h.lower().startswith(b"last-event-id:")]
        assert len(resume) == 1 and resume[0].split(b":", 1)[1].strip() in ids, head


async def test_reconnect_false_ends_at_a_cut_and_401_on_reconnect_raises(dapi: Api) -> None:
    """reconnect=False: the iteration just ends when the connection is cut. With reconnect,
    a token revoked meanwhile makes the reconnection raise Unauthenticated, not loop."""
    sub = await setup(dapi)
    await dapi.post("al-cert", unique_threat("r-1"))
    proxy = await TcpProxy(dapi.client.host, dapi.client.port).start()
    try:
        async with client_for(dapi, "fc-ba", proxy.url) as hub:
            async with aclosing(hub.events(sub, reconnect=False)) as events:
                assert (await anext(events)).data["id"]
                proxy.cut_all()
                with pytest.raises(StopAsyncIteration):
                    await asyncio.wait_for(anext(events), 5)

            async with aclosing(hub.events(sub)) as events:
                await anext(events)
                resp = await dapi.client.delete("/v1/nodes/fc-ba", headers=dapi.auth("operator"))
                assert resp.status == 204
                proxy.cut_all()
                with pytest.raises(Unauthenticated):
                    await asyncio.wait_for(anext(events), 5)
    finally:
        await proxy.stop()


async def test_an_event_without_an_id_keeps_the_resume_point() -> None:
    """An event whose id is empty (an `id:` line with nothing, or none at the start of a
    connection) does not move the resume point: the next connection still sends the last real
    id as Last-Event-ID instead of none, which would replay the whole feed. A loopback server
    plays the stream, as the hub never sends such events."""
    streams = [
        b'id: 8-0\nevent: alert.created\ndata: {"n":1}\n\n'
        b'id:\nevent: alert.created\ndata: {"n":2}\n\n',
        b'event: alert.created\ndata: {"n":3}\n\n',
        b'id: 9-0\nevent: alert.created\ndata: {"n":4}\n\n',
    ]
    resumed_from: list[str | None] = []

    async def events(request: web.Request) -> web.StreamResponse:
        resumed_from.append(request.headers.get("Last-Event-ID"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(streams[min(len(resumed_from), len(streams)) - 1])
        return resp  # the connection ends: the client resumes

    app = web.Application()
    app.router.add_get("/v1/subscriptions/s/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with HubClient(f"http://127.0.0.1:{port}", "t", timeout_s=5) as hub:
            got: list[Event] = []
            async with aclosing(hub.events("s")) as stream:
                async for event in stream:
                    got.append(event)
                    if len(got) == 4:
                        break
    finally:
        await runner.cleanup()
    assert [e.data["n"] for e in got] == [1, 2, 3, 4]
    assert resumed_from[:3] == [None, "8-0", "8-0"]

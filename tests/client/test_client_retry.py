"""What the client rides out and what it does not: a batch refused whole (429, 503) is sent
again, and a stream refused by a proxy (502) is opened again, each through a loopback server
in front of a real hub on real Redis that answers the errors a test asks of it."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from alerthub_client import NotFound, RateLimited
from tests.client.front import Fault, Front
from tests.client.hubs import client_for, hub_url
from tests.conftest import Api, unique_threat

BATCH = "/v1/alerts/batch"


async def test_a_batch_refused_with_429_or_503_is_sent_again(dapi: Api) -> None:
    """The hub charges a batch one rate unit per alert, so a long input meets 429 partway: the
    refused batch is sent again after Retry-After and every alert gets its result, in order.
    A 503 after the hub stored a batch (a proxy that gave up) is safe too: the resent alerts
    come back unchanged and none is stored twice."""
    await dapi.add_node("al-cert", "AL")
    alerts = [unique_threat(f"q-{i}") for i in range(5)]
    async with Front(hub_url(dapi)) as front, client_for(dapi, "al-cert", front.url) as hub:
        progress: list[int] = []

        def arm(done: int) -> None:  # the hub's 429 for the second batch, as a rate limit
            progress.append(done)
            if done == 2:
                front.faults = [Fault("POST", BATCH, 429, {"Retry-After": "0.1"})]

        results = await hub.post_alerts(alerts, batch_size=2, on_progress=arm)
        assert [r["status"] for r in results] == ["created"] * 5
        assert [r["index"] for r in results] == list(range(5)) and progress == [2, 4, 5]
        sent = front.requests("POST", BATCH)
        assert len(sent) == 4 and sent[1].body == sent[2].body  # the refused one, again

        # 503 after the hub stored the batch: the answer is lost, the resend says unchanged.
        more = [unique_threat(f"s-{i}") for i in range(3)]
        front.faults = [Fault("POST", BATCH, 503, {"Retry-After": "0"}, forward=True)]
        results = await hub.post_alerts(more)
        assert [r["status"] for r in results] == ["unchanged"] * 3
        stored = [a["id"] async for a in hub.iter_alerts(limit=500)]
        assert sorted(stored) == sorted(a["id"] for a in alerts + more)


async def test_a_batch_refused_for_good_raises_after_a_bounded_wait(dapi: Api) -> None:
    """A batch refused again and again is given up once the waits would pass retry_for_s:
    RateLimited, with the results of the batches stored before it."""
    await dapi.add_node("al-cert", "AL")
    alerts = [unique_threat(f"g-{i}") for i in range(4)]
    async with Front(hub_url(dapi)) as front, client_for(dapi, "al-cert", front.url) as hub:
        progress: list[int] = []

        def arm(done: int) -> None:
            progress.append(done)
            front.faults = [Fault("POST", BATCH, 429, {"Retry-After": "0.05"}, times=-1)]

        with pytest.raises(RateLimited) as refused:
            await hub.post_alerts(alerts, batch_size=2, on_progress=arm, retry_for_s=0.5)
        assert progress == [2]
        partial = refused.value.partial_results or []
        assert [(r["index"], r["status"]) for r in partial] == [(0, "created"), (1, "created")]
        # Waits of 0.1 and 0.2 s fit in 0.5 s, the next (0.4 s) would not: three tries.
        assert len(front.requests("POST", BATCH)) == 1 + 3


async def test_events_ride_out_a_proxy_502_and_stop_at_a_404(dapi: Api) -> None:
    """A 502 from a proxy (or a 500 during a rolling update) is opened again after a backoff,
    as a cut is, and the stream delivers; a 404 still ends it at once."""
    await dapi.add_node("al-cert", "AL")
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    async with (
        Front(hub_url(dapi)) as front,
        client_for(dapi, "al-cert") as pub,
        client_for(dapi, "fc-ba", front.url) as hub,
    ):
        sub = (await hub.subscribe())["id"]
        hub_id = (await pub.post_alert(unique_threat("e-1")))["hub_id"]
        front.faults = [Fault("GET", "/events", 502), Fault("GET", "/events", 500)]
        async with aclosing(hub.events(sub)) as events:
            event = await asyncio.wait_for(anext(events), 10)
        assert event.data["hub_id"] == hub_id and len(front.requests("GET", "/events")) == 3

        with pytest.raises(NotFound):
            async with aclosing(hub.events("01J0000000000000000000000Z")) as events:
                await asyncio.wait_for(anext(events), 10)

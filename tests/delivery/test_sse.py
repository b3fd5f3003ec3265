"""Server-Sent Events: live events, resume with Last-Event-ID with no gap and no repeat,
heartbeats, history-truncated, and streams ended cleanly when the hub stops."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hub.app import create_app
from hub.delivery import feeds
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from tests.conftest import Api, unique_threat
from tests.sse_client import SseReader


async def open_stream(api: Api, node: str, sub_id: str, last_id: str | None = None) -> SseReader:
    headers = {**api.auth(node), "Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    resp = await api.client.get(f"/v1/subscriptions/{sub_id}/events", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return SseReader(resp)


async def setup(api: Api) -> str:
    await api.add_node("al-cert", country="AL")
    await api.add_node("fc-ba", country="BA", kind="civil-society", roles=("subscribe",))
    return (await api.subscribe("fc-ba"))["id"]


async def test_live_events_then_resume_with_no_gap_and_no_repeat(dapi: Api) -> None:
    """Events stream live; a client that drops after the second and resumes with its
    Last-Event-ID gets exactly the rest."""
    sub = await setup(dapi)
    stream = await open_stream(dapi, "fc-ba", sub)
    hub_ids = []
    for i in range(2):
        _, posted = await dapi.post("al-cert", unique_threat(f"t-{i}"))
        hub_ids.append(posted["hub_id"])
    first = [await stream.next_event() for _ in range(2)]
    assert [f["data"]["hub_id"] for f in first] == hub_ids
    assert all(f["event"] == "alert.created" and f["id"] == f["data"]["id"] for f in first)
    stream.response.close()

    for i in range(2, 5):
        _, posted = await dapi.post("al-cert", unique_threat(f"t-{i}"))
        hub_ids.append(posted["hub_id"])
    await dapi.wait_for_feed("fc-ba", sub, 5)
    resumed = await open_stream(dapi, "fc-ba", sub, last_id=first[-1]["id"])
    rest = [await resumed.next_event() for _ in range(3)]
    assert [f["data"]["hub_id"] for f in rest] == hub_ids[2:]
    resumed.response.close()


async def test_heartbeat_comment_when_idle(dapi: Api) -> None:
    """An idle stream sends a comment within the heartbeat interval (0.3 s in these tests)."""
    sub = await setup(dapi)
    stream = await open_stream(dapi, "fc-ba", sub)
    frames = [await stream.next_frame(within=2.0) for _ in range(2)]
    assert {"comment": "heartbeat"} in frames
    stream.response.close()


async def test_history_truncated_when_the_resume_point_is_gone(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet
) -> None:
    """With a feed of 3, resuming from the first of 6 events says history-truncated, then
    goes on from the oldest held."""
    settings = dataclasses.replace(delivery_settings, feed_retention=3)
    api = Api(await aiohttp_client(create_app(settings, schema_set)))
    sub = await setup(api)
    hub_ids = []
    for i in range(6):
        _, posted = await api.post("al-cert", unique_threat(f"t-{i}"))
        hub_ids.append(posted["hub_id"])
    events = await api.wait_for_feed("fc-ba", sub, 3, last=hub_ids[-1])
    assert [e["hub_id"] for e in events] == hub_ids[3:]
    stream = await open_stream(api, "fc-ba", sub, last_id="1-0")
    warning = await stream.next_event()
    assert warning["event"] == "history-truncated" and warning["data"]["after"] == "1-0"
    rest = [await stream.next_event() for _ in range(3)]
    assert [f["data"]["hub_id"] for f in rest] == hub_ids[3:]
    stream.response.close()

    resp = await api.client.get(
        f"/v1/subscriptions/{sub}/feed?after=1-0", headers=api.auth("fc-ba")
    )
    assert resp.status == 410 and (await resp.json())["error"] == "history_truncated"
    fine = await api.feed("fc-ba", sub, after=events[0]["id"])
    assert [e["hub_id"] for e in fine] == hub_ids[4:]


async def test_open_streams_end_cleanly_when_the_hub_stops(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet
) -> None:
    """Stopping the app ends every open stream at once (no wait for the shutdown timeout)."""
    client = await aiohttp_client(create_app(delivery_settings, schema_set))
    api = Api(client)
    sub = await setup(api)
    streams = [await open_stream(api, "fc-ba", sub) for _ in range(3)]
    await client.server.close()
    for stream in streams:
        try:
            while True:
                await stream.next_frame(within=3.0)
        except EOFError:
            pass


async def test_an_update_that_withholds_applies_to_later_reads(
    dapi: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After revision 2 withholds an alert from RS, an RS stream reading the older event no
    longer gets it: the render cache follows the alert's current sharing (read afresh here;
    at most feeds.STATE_TTL_S old in service)."""
    monkeypatch.setattr(feeds, "STATE_TTL_S", 0.0)
    await dapi.add_node("al-cert", country="AL")
    await dapi.add_node("rs-cert", country="RS")
    sub = (await dapi.subscribe("rs-cert"))["id"]
    await dapi.post("al-cert", unique_threat("t-1"))
    events = await dapi.wait_for_feed("rs-cert", sub, 1)
    first = await open_stream(dapi, "rs-cert", sub)
    assert (await first.next_event())["data"]["hub_id"] == events[0]["hub_id"]
    first.response.close()
    status, _ = await dapi.post(
        "al-cert", unique_threat("t-1", revision=2, share={"withhold_from": ["RS"]})
    )
    assert status == 200
    assert await dapi.feed("rs-cert", sub) == []
    again = await open_stream(dapi, "rs-cert", sub)
    frames = [await again.next_frame(within=2.0) for _ in range(3)]
    assert all("event" not in f for f in frames), frames
    again.response.close()

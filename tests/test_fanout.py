"""Fan-out into feeds, read by pull: what each subscriber gets, and as which event type."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.conftest import Api, disinfo_alert, threat_alert


async def subscribe(api: Api, node: str, **filter_: Any) -> str:
    body = {"filter": filter_, "delivery": {"type": "pull"}}
    resp = await api.client.post("/v1/subscriptions", json=body, headers=api.auth(node))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def feed(api: Api, node: str, sub_id: str, after: str | None = None) -> list[dict]:
    path = f"/v1/subscriptions/{sub_id}/feed" + (f"?after={after}" if after else "")
    status, body = await api.get(node, path)
    assert status == 200, body
    return body["events"]


async def wait_for_feed(
    api: Api, node: str, sub_id: str, count: int, timeout: float = 10.0
) -> list[dict]:
    """The feed once it holds at least `count` events (fan-out runs in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        events = await feed(api, node, sub_id)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.02)


async def test_pull_subscriber_gets_a_new_alert_as_created(api: Api) -> None:
    """A GREEN alert posted after subscribing arrives in the feed as alert.created, with the alert."""
    await api.add_node("al-cert", country="AL")
    await api.add_node("fc-ba", country="BA", kind="civil-society", roles=("subscribe",))
    sub = await subscribe(api, "fc-ba")
    status, posted = await api.post("al-cert", threat_alert("t-1"))
    assert status == 201
    events = await wait_for_feed(api, "fc-ba", sub, 1)
    assert [(e["type"], e["hub_id"]) for e in events] == [("alert.created", posted["hub_id"])]
    assert events[0]["alert"]["id"] == "t-1" and events[0]["alert"]["sender"] == "al-cert"


async def test_cyrillic_and_latin_reports_arrive_as_created_then_corroborated(api: Api) -> None:
    """One claim in Serbian Cyrillic and in Latin: created once, corroborated once."""
    await api.add_node("rs-cert", country="RS")
    await api.add_node("ba-cert", country="BA")
    await api.add_node("fc-me", country="ME", kind="civil-society", roles=("subscribe",))
    sub = await subscribe(api, "fc-me")
    s1, first = await api.post("rs-cert", disinfo_alert("d-1"))
    s2, second = await api.post(
        "ba-cert", disinfo_alert("d-2", claim="NATO gomila trupe kod Zvečana", language="sr-Latn")
    )
    assert (s1, s2) == (201, 201) and second["status"] == "corroborated", second
    events = await wait_for_feed(api, "fc-me", sub, 2)
    assert [(e["type"], e["hub_id"]) for e in events] == [
        ("alert.created", first["hub_id"]),
        ("alert.corroborated", second["hub_id"]),
    ]

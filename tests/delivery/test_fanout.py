"""Fan-out into feeds: what each subscriber of the region gets, by every delivery path, and as
which event type."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.keys import Keys
from tests.conftest import Api, disinfo_alert, threat_alert, unique_threat
from tests.delivery.test_sse import open_stream
from tests.delivery.test_webhooks import wait_status
from tests.fanout_groups import ONE_GROUP, fanned_out
from tests.receivers import Receiver
from tests.sse_client import SseReader

GOVERNMENTS = {"al-cert": "AL", "ba-cert": "BA", "xk-cert": "XK", "me-cert": "ME",
               "mk-cert": "MK", "rs-cert": "RS"}  # fmt: skip
FACT_CHECKERS = {"fc-ba": "BA", "fc-rs": "RS"}


async def test_pull_subscriber_gets_a_new_alert_as_created(api: Api) -> None:
    """A GREEN alert posted after subscribing arrives as alert.created, carrying the alert."""
    await api.add_node("al-cert", country="AL")
    await api.add_node("fc-ba", country="BA", kind="civil-society", roles=("subscribe",))
    sub = (await api.subscribe("fc-ba"))["id"]
    status, posted = await api.post("al-cert", threat_alert("t-1"))
    assert status == 201
    events = await api.wait_for_feed("fc-ba", sub, 1)
    assert [(e["type"], e["hub_id"]) for e in events] == [("alert.created", posted["hub_id"])]
    assert events[0]["alert"]["id"] == "t-1" and events[0]["alert"]["sender"] == "al-cert"


async def test_alerts_before_the_subscription_are_not_in_its_feed(api: Api) -> None:
    """A subscription starts with the events logged after it was made."""
    await api.add_node("al-cert", country="AL")
    await api.post("al-cert", unique_threat("before"))
    sub = (await api.subscribe("al-cert"))["id"]
    _, after = await api.post("al-cert", unique_threat("after"))
    events = await api.wait_for_feed("al-cert", sub, 1, last=after["hub_id"])
    assert [e["hub_id"] for e in events] == [after["hub_id"]]


async def test_filters_choose_what_a_subscription_gets(api: Api) -> None:
    """kinds, target and source countries, minimum severity, tags and languages all filter."""
    await api.add_node("al-cert", country="AL")
    await api.add_node("rs-cert", country="RS")
    subs = {
        "threat": await api.subscribe("al-cert", kinds=["threat"]),
        "to-xk": await api.subscribe("al-cert", target_countries=["XK"]),
        "from-rs": await api.subscribe("al-cert", source_countries=["RS"]),
        "critical": await api.subscribe("al-cert", min_severity="critical"),
        "kfor": await api.subscribe("al-cert", tags_any=["kfor"]),
        "serbian": await api.subscribe("al-cert", languages=["sr"]),
    }
    _, threat = await api.post("al-cert", unique_threat("t-1", severity="critical"))
    _, disinfo = await api.post("rs-cert", disinfo_alert("d-1", tags=["kfor"], severity="high"))
    expected = {
        "threat": [threat["hub_id"]],
        "to-xk": [disinfo["hub_id"]],
        "from-rs": [disinfo["hub_id"]],
        "critical": [threat["hub_id"]],
        "kfor": [disinfo["hub_id"]],
        "serbian": [disinfo["hub_id"]],
    }
    probe = await api.subscribe("al-cert")  # everything: once both are here, fan-out is done
    await api.wait_for_feed("al-cert", probe["id"], 0)
    _, marker = await api.post("al-cert", unique_threat("marker", severity="low", tags=[]))
    await api.wait_for_feed("al-cert", probe["id"], 1, last=marker["hub_id"])
    for name, sub in subs.items():
        got = [e["hub_id"] for e in await api.feed("al-cert", sub["id"])]
        got = [h for h in got if h != marker["hub_id"]]
        assert got == expected[name], name


@pytest.fixture
async def region(dapi: Api) -> AsyncIterator[dict]:
    """Six government nodes and two fact-checkers, each with a pull subscription to everything;
    rs-cert also with a verified webhook and an open SSE stream."""
    for node, country in GOVERNMENTS.items():
        await dapi.add_node(node, country=country)
    for node, country in FACT_CHECKERS.items():
        await dapi.add_node(node, country=country, kind="civil-society", roles=("subscribe",))
    pulls = {node: (await dapi.subscribe(node))["id"] for node in (*GOVERNMENTS, *FACT_CHECKERS)}
    receiver = await Receiver().start()
    hook = await dapi.subscribe("rs-cert", {"type": "webhook", "url": receiver.url})
    await wait_status(dapi, "rs-cert", hook["id"], "active")
    stream = await open_stream(dapi, "rs-cert", (await dapi.subscribe("rs-cert"))["id"])
    yield {"pulls": pulls, "receiver": receiver, "stream": stream}
    stream.response.close()
    await receiver.stop()


async def test_regional_scenario_by_every_path(dapi: Api, region: dict) -> None:
    """GREEN reaches all, AMBER the governments and a named fact-checker, RED only its
    recipients, an RS-withheld alert no RS node by pull, webhook, SSE or GET, and one claim
    in Cyrillic and Latin arrives once as created and once as corroborated."""
    posts = [
        ("al-cert", unique_threat("green", tlp="GREEN")),
        ("me-cert", unique_threat("amber", tlp="AMBER", share={"recipients": ["fc-rs"]})),
        ("ba-cert", unique_threat("red", tlp="RED", share={"recipients": ["al-cert", "XK"]})),
        ("xk-cert", unique_threat("withheld", tlp="GREEN", share={"withhold_from": ["RS"]})),
        ("rs-cert", disinfo_alert("claim-cyr")),
        ("mk-cert", disinfo_alert("claim-lat", claim="NATO gomila trupe kod Zvečana",
                                  language="sr-Latn")),
    ]  # fmt: skip
    hub_ids = {}
    for node, alert in posts:
        status, body = await dapi.post(node, alert)
        assert status == 201, body
        hub_ids[alert["id"]] = body["hub_id"]
    everyone = (*GOVERNMENTS, *FACT_CHECKERS)
    reaches = {
        "green": set(everyone),
        "amber": set(GOVERNMENTS) | {"fc-rs"},
        "red": {"ba-cert", "al-cert", "xk-cert"},
        "withheld": set(everyone) - {"rs-cert", "fc-rs"},
        "claim-cyr": set(everyone),
        "claim-lat": set(everyone),
    }
    last = hub_ids["claim-lat"]
    for node, sub in region["pulls"].items():
        events = await dapi.wait_for_feed(node, sub, 2, last=last)
        expected = [
            (("alert.corroborated" if aid == "claim-lat" else "alert.created"), hub_ids[aid])
            for aid in hub_ids
            if node in reaches[aid]
        ]
        assert [(e["type"], e["hub_id"]) for e in events] == expected, node

    withheld = hub_ids["withheld"]
    for node in ("rs-cert", "fc-rs"):
        status, _ = await dapi.get(node, f"/v1/alerts/{withheld}")
        assert status == 404
        _, listing = await dapi.get(node, "/v1/alerts?limit=500")
        assert withheld not in {a["hub_id"] for a in listing["alerts"]}
    receiver: Receiver = region["receiver"]
    await receiver.wait_for(lambda r: any(d.event["hub_id"] == last for d in r.deliveries))
    assert withheld not in {d.event["hub_id"] for d in receiver.deliveries}
    stream: SseReader = region["stream"]
    seen = []
    while not seen or seen[-1] != last:
        seen.append((await stream.next_event())["data"]["hub_id"])
    assert len(seen) == len(set(seen)) == 4  # green, amber, both claims
    assert withheld not in seen


async def test_updates_and_retractions_reach_only_those_who_got_the_report(api: Api) -> None:
    """An update and a retraction go to subscribers that received the report, not to one whose
    filter never matched it."""
    await api.add_node("al-cert", country="AL")
    everything = (await api.subscribe("al-cert"))["id"]
    disinfo_only = (await api.subscribe("al-cert", kinds=["disinformation"]))["id"]
    _, posted = await api.post("al-cert", unique_threat("t-1"))
    status, updated = await api.post("al-cert", unique_threat("t-1", revision=2, title="Worse"))
    assert (status, updated["status"]) == (200, "updated")
    resp = await api.client.post(
        f"/v1/alerts/{posted['hub_id']}/retract", json={"reason": "false positive"},
        headers=api.auth("al-cert"),
    )  # fmt: skip
    assert resp.status == 200
    events = await api.wait_for_feed("al-cert", everything, 3)
    assert [e["type"] for e in events] == ["alert.created", "alert.updated", "alert.retracted"]
    assert events[-1]["alert"]["status"] == "retracted"
    _, marker = await api.post("al-cert", disinfo_alert("d-1"))
    assert [e["hub_id"] for e in await api.wait_for_feed("al-cert", disinfo_only, 1)] == [
        marker["hub_id"]
    ]


async def test_a_pending_entry_deleted_from_the_log_is_let_go(
    aiohttp_client: Any,
    settings: Settings,
    schema_set: SchemaSet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An entry read but not acknowledged (a holder died) and then deleted from the log (an
    operator's XDEL or XTRIM) comes back without fields: the fan-out acknowledges it, says so in
    its log, and goes on with the rest in order."""
    keys = Keys(settings.key_prefix)
    lease = keys.fanout_lease(1, 0)
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.set(lease, "test:holds-the-fan-out", px=60_000)  # no fan-out until let go
        app = create_app(dataclasses.replace(settings, fanout_shards=1), schema_set)
        api = Api(await aiohttp_client(app))
        await api.add_node("al-cert", country="AL")
        sub = (await api.subscribe("al-cert"))["id"]
        _, lost = await api.post("al-cert", unique_threat("lost"))
        _, kept = await api.post("al-cert", unique_threat("kept"))
        await wait_until(lambda: group_exists(redis, keys.events))
        # A dead holder's read up to the first alert's entry, then that entry deleted.
        log = await redis.xrange(keys.events)
        upto = next(
            n for n, (_, f) in enumerate(log) if f.get(b"hub_id") == lost["hub_id"].encode()
        )
        entry_id = log[upto][0]
        await redis.xreadgroup(ONE_GROUP, "fanout", {keys.events: ">"}, count=upto + 1)
        assert await redis.xdel(keys.events, entry_id) == 1
        await redis.delete(lease)

        events = await api.wait_for_feed("al-cert", sub, 1, last=kept["hub_id"])
        assert [e["hub_id"] for e in events] == [kept["hub_id"]]
        await wait_until(lambda: fanned_out(redis, keys, shards=1))
        assert (await redis.xpending(keys.events, ONE_GROUP))["pending"] == 0
        assert entry_id.decode() in next(
            line for line in capsys.readouterr().out.splitlines() if "fanout_entries_gone" in line
        )
    finally:
        await redis.aclose()


async def group_exists(redis: Redis, events: str) -> bool:
    with contextlib.suppress(ResponseError):  # no log yet
        return any(g["name"] == ONE_GROUP.encode() for g in await redis.xinfo_groups(events))
    return False


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.02)

"""The Atom feed of a subscription (GET /v1/subscriptions/{id}/feed.atom) and its read-only
feed key: a real feed parser (feedparser) reads every feed without complaint, in the pull
feed's order (newest first), resumes with the feed key, and a revoked key is refused at once."""

from __future__ import annotations

from typing import Any

import feedparser
import pytest
from structlog.testing import capture_logs

from hub.context import HUB
from hub.delivery.atom import FeedHead, render_feed
from tests.conftest import Api, disinfo_alert
from tests.factcheck.helpers import fact_check_body, post_fact_check

pytestmark = pytest.mark.timeout(60)
HOSTILE = 'Ends ]]> here & <script>alert(1)</script> "quoted"'


async def every_event_type(api: Api) -> tuple[str, list[dict[str, Any]]]:
    """rs-cert's pull subscription after a created, corroborated, updated and retracted alert,
    a fact-check and its retraction, and a node registered in Serbia; with its pull feed."""
    await api.add_node("rs-cert", "RS")
    await api.add_node("al-cert", "AL")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe", "fact-check"))
    sub = (await api.subscribe("rs-cert"))["id"]
    first = disinfo_alert("a-1", title=f"Title {HOSTILE}", summary=f"Line one\r\nLine {HOSTILE}")
    _, posted = await api.post("rs-cert", first)
    _, copy = await api.post("al-cert", disinfo_alert("a-2"))
    await api.post("rs-cert", {**first, "revision": 2, "severity": "critical"})
    await api.client.post(f"/v1/alerts/{copy['hub_id']}/retract", headers=api.auth("al-cert"))
    body = fact_check_body(claim_reviewed=f"Claim {HOSTILE}", summary=f"Because {HOSTILE}")
    _, checked = await post_fact_check(api, "fc-ba", posted["hub_id"], body)
    path = f"/v1/alerts/{posted['hub_id']}/fact-checks/{checked['fact_check_id']}/retract"
    await api.client.post(path, headers=api.auth("fc-ba"))
    await api.add_node("rs-newsroom", "RS", kind="civil-society", roles=("subscribe",))
    events = await api.wait_for_feed("rs-cert", sub, 7)
    assert len(events) == 7, events
    return sub, events


def parse(body: bytes) -> Any:
    parsed = feedparser.parse(
        body, response_headers={"content-type": "application/atom+xml; charset=utf-8"}
    )
    assert parsed.bozo is False, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


async def test_a_feed_reader_parses_every_event_type_newest_first(api: Api) -> None:
    """Every kind of event, with markup, CDATA ends and line breaks in its text, makes a feed
    feedparser reads without error; entries are the pull feed's events, newest first, each
    titled with its TLP marking."""
    sub, events = await every_event_type(api)
    assert [e["type"] for e in events] == [
        "alert.created", "alert.corroborated", "alert.updated", "alert.retracted",
        "alert.fact_checked", "alert.fact_check_retracted", "node.registered",
    ]  # fmt: skip
    resp = await api.client.get(f"/v1/subscriptions/{sub}/feed.atom", headers=api.auth("rs-cert"))
    assert resp.status == 200 and resp.content_type == "application/atom+xml"
    parsed = parse(await resp.read())
    ids = [entry.id.rsplit(":", 1)[-1] for entry in parsed.entries]
    assert ids == [e["id"] for e in reversed(events)]
    titles = [entry.title for entry in parsed.entries]
    assert titles[0].startswith("Node registered: Node rs-newsroom (RS)")
    assert titles[1].startswith("[TLP:GREEN] Fact-check retracted: False — Claim Ends ]]>")
    assert all(t.startswith("[TLP:GREEN] ") for t in titles[1:])
    created = parsed.entries[-1]
    assert "<script>" not in created.content[0].value.replace("&lt;script&gt;", "")
    assert created.tags[0].term == "alert.created" and created.tags[1].term == "TLP:GREEN"
    assert created.link.endswith(f"/v1/alerts/{events[0]['hub_id']}")


async def test_feed_key_reads_resumes_and_is_revoked_at_once(api: Api) -> None:
    """A feed key read the feed without a bearer header, resumes after an event, is stored
    only as a digest and never logged, and stops working the moment it is revoked or
    replaced."""
    sub, events = await every_event_type(api)
    with capture_logs() as logs:
        resp = await api.client.post(
            f"/v1/subscriptions/{sub}/feed-key", headers=api.auth("rs-cert")
        )
        assert resp.status == 201
        made = await resp.json()
        url, key = made["feed_url"], made["key"]
        assert url.endswith(f"/v1/subscriptions/{sub}/feed.atom?key={key}")
        path = url.split("://", 1)[1].split("/", 1)[1]
        resp = await api.client.get("/" + path)
        assert resp.status == 200
        assert len(parse(await resp.read()).entries) == len(events)
        resp = await api.client.get(f"/{path}&after={events[3]['id']}")
        resumed = parse(await resp.read())
        assert [e.id.rsplit(":", 1)[-1] for e in resumed.entries] == [
            e["id"] for e in reversed(events[4:])
        ]
        hub = api.client.server.app[HUB]
        stored = await hub.redis.get(hub.keys.feed_key(sub))
        assert stored is not None and key.encode() not in stored
    assert key not in str(logs)
    resp = await api.client.delete(f"/v1/subscriptions/{sub}/feed-key", headers=api.auth("rs-cert"))
    assert resp.status == 204
    resp = await api.client.get("/" + path)
    assert resp.status == 401 and (await resp.json())["error"] == "unauthenticated"
    first = await (await api.client.post(
        f"/v1/subscriptions/{sub}/feed-key", headers=api.auth("rs-cert"))).json()  # fmt: skip
    second = await (await api.client.post(
        f"/v1/subscriptions/{sub}/feed-key", headers=api.auth("rs-cert"))).json()  # fmt: skip
    old = await api.client.get(f"/v1/subscriptions/{sub}/feed.atom?key={first['key']}")
    new = await api.client.get(f"/v1/subscriptions/{sub}/feed.atom?key={second['key']}")
    assert (old.status, new.status) == (401, 200)


async def test_only_the_owner_makes_a_key_and_it_opens_only_its_feed(api: Api) -> None:
    """The operator may read and revoke, not mint a key (which reads with the owner's eyes);
    another node gets 404; a key opens its own subscription's feed and no other."""
    sub, _ = await every_event_type(api)
    other = (await api.subscribe("al-cert"))["id"]
    resp = await api.client.post(f"/v1/subscriptions/{sub}/feed-key", headers=api.auth("operator"))
    assert resp.status == 403
    resp = await api.client.post(f"/v1/subscriptions/{sub}/feed-key", headers=api.auth("al-cert"))
    assert resp.status == 404
    made = await (await api.client.post(
        f"/v1/subscriptions/{sub}/feed-key", headers=api.auth("rs-cert"))).json()  # fmt: skip
    resp = await api.client.get(f"/v1/subscriptions/{other}/feed.atom?key={made['key']}")
    assert resp.status == 401
    resp = await api.client.get(f"/v1/subscriptions/{sub}/feed.atom?key=fk_guess")
    assert resp.status == 401
    path = f"/v1/subscriptions/{sub}/feed-key"
    resp = await api.client.delete(path, headers=api.auth("operator"))
    assert resp.status == 204
    resp = await api.client.get(f"/v1/subscriptions/{sub}/feed.atom?key={made['key']}")
    assert resp.status == 401


def test_text_xml_cannot_hold_is_dropped() -> None:
    """Control characters JSON can carry (and XML 1.0 cannot) never make a feed ill-formed."""
    when = "2026-01-01T00:00:00Z"
    head = FeedHead("tag:alerthub,2026:x", "t\x01", "http://h/x?key=a&b", "http://h/a/", when)
    event = {"id": "1-0", "type": "alert.created", "occurred_at": "2026-01-01T00:00:00Z",
             "hub_id": "H", "alert": {"tlp": "GREEN", "title": "bell\x07 nul\x00 <b>",
                                      "summary": "esc\x1b"}}  # fmt: skip
    parsed = parse(render_feed(head, [event]))
    assert parsed.entries[0].title == "[TLP:GREEN] New alert: bell nul <b>"

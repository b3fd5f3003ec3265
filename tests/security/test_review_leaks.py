"""Regression tests for the outside review's leak findings (issue 15: 1, 3 and 4), each written
from the reviewer's steps: a dedup answer after an update, dead letters and feed cursors read by
the operator or after a sender narrowed the sharing, and the listing's paging over many hidden
alerts. Each compares what the caller gets with what it would get had the hidden alert never
been posted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.context import HUB
from tests.conftest import Api, unique_threat
from tests.delivery.test_webhooks import wait_status
from tests.receivers import Receiver
from tests.security.tally import refused

pytestmark = pytest.mark.timeout(90)

RED_TO_ME = {"tlp": "RED", "share": {"recipients": ["me-cert"]}}


async def _nodes(api: Api) -> None:
    await api.add_node("al-cert", "AL")
    await api.add_node("me-cert", "ME")
    await api.add_node("rs-cert", "RS")


def _with_domain(alert_id: str, domain: str, **changes: Any) -> dict[str, Any]:
    return unique_threat(alert_id, indicators=[{"type": "domain", "value": domain}], **changes)


async def test_update_then_post_is_no_oracle_for_hidden_content(dapi: Api) -> None:
    """Finding 1: a node that updates its own alert to content a RED alert already carries,
    then posts that content again, is told `corroborated` with its own alert, exactly as when
    the RED alert does not exist; the cluster it is told is its own alert's, not the hidden
    one's, and its own alert names no hidden co-reporter."""
    api = dapi
    await _nodes(api)
    status, red = await api.post(
        "al-cert", _with_domain("red-1", "secret.phish.example", **RED_TO_ME)
    )
    assert status == 201
    _, own = await api.post("rs-cert", _with_domain("rs-1", "own.phish.example"))
    status, updated = await api.post(
        "rs-cert", _with_domain("rs-1", "secret.phish.example", revision=2)
    )
    assert status == 200 and updated["status"] == "updated", updated
    refused("leak: dedup probe")
    status, again = await api.post("rs-cert", _with_domain("rs-2", "secret.phish.example"))
    assert status == 201
    assert again["status"] == "corroborated", again
    assert again["duplicate_of"] == own["hub_id"]
    _, first = await api.get("rs-cert", f"/v1/alerts/{own['hub_id']}")
    assert again["cluster_id"] == first["cluster_id"]
    assert red["hub_id"] not in str(first) and red["hub_id"] not in str(again)
    _, second = await api.get("rs-cert", f"/v1/alerts/{again['hub_id']}")
    assert {r["hub_id"] for r in second["reporters"]} == {own["hub_id"], again["hub_id"]}


async def test_post_of_hidden_content_answers_as_for_new_content(dapi: Api) -> None:
    """Finding 1, the plain post: a node posting content only a RED alert carries gets a new
    cluster of its own (a second post of it corroborates its first), never the hidden alert's
    answer, and another node that may see both gets each once as new in its feed."""
    api = dapi
    await _nodes(api)
    sub = (await api.subscribe("me-cert"))["id"]
    _, red = await api.post("al-cert", _with_domain("red-1", "twice.phish.example", **RED_TO_ME))
    refused("leak: dedup probe")
    _, copy = await api.post("rs-cert", _with_domain("rs-1", "twice.phish.example"))
    assert copy["status"] == "created" and "duplicate_of" not in copy
    _, again = await api.post("rs-cert", _with_domain("rs-2", "twice.phish.example"))
    assert again["status"] == "corroborated" and again["duplicate_of"] == copy["hub_id"]
    # me-cert may see the RED alert and both copies: one incident, reported three times.
    events = await api.wait_for_feed("me-cert", sub, 3)
    assert [e["type"] for e in events] == [
        "alert.created",
        "alert.corroborated",
        "alert.corroborated",
    ]
    assert [e["hub_id"] for e in events] == [red["hub_id"], copy["hub_id"], again["hub_id"]]
    assert len({e["cluster_id"] for e in events}) == 1


async def test_operator_sees_no_hidden_dead_letter_or_cursor(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """Finding 3: a partner's dead letters and pull feed, read by the operator, show nothing of
    a RED alert the operator may not read: no dead letter, no `next` cursor standing on its
    event, and replaying every dead letter counts only those the operator may see."""
    api = dapi
    await _nodes(api)
    failing = await Receiver(answers=[500] * 50).start()
    receivers.append(failing)
    hook = await api.subscribe("me-cert", {"type": "webhook", "url": failing.url})
    await wait_status(api, "me-cert", hook["id"], "active")
    pull = (await api.subscribe("me-cert"))["id"]
    _, red = await api.post("al-cert", _with_domain("red-1", "unseen.phish.example", **RED_TO_ME))
    _, green = await api.post("al-cert", _with_domain("green-1", "seen.phish.example"))
    events = await api.wait_for_feed("me-cert", pull, 2)
    assert [e["hub_id"] for e in events] == [red["hub_id"], green["hub_id"]]
    # One event fails every attempt and pauses the subscription; resumed, the other one too.
    await wait_status(api, "me-cert", hook["id"], "paused")
    resp = await api.client.patch(
        f"/v1/subscriptions/{hook['id']}", json={"status": "active"}, headers=api.auth("me-cert")
    )
    assert resp.status == 200
    await _wait_dead_letters(api, hook["id"], 2)

    refused("leak: reads by an excluded reader (must show nothing hidden)", 3)
    status, letters = await api.get("operator", f"/v1/subscriptions/{hook['id']}/dead-letters")
    assert status == 200
    assert [d["hub_id"] for d in letters["dead_letters"]] == [green["hub_id"]]
    status, page = await api.get("operator", f"/v1/subscriptions/{pull}/feed?limit=10")
    assert [e["hub_id"] for e in page["events"]] == [green["hub_id"]]
    assert page["next"] == events[1]["id"]
    status, page = await api.get(
        "operator", f"/v1/subscriptions/{pull}/feed?after={events[1]['id']}"
    )
    assert page == {"events": [], "next": events[1]["id"]}, "the cursor moved onto a hidden event"
    status, page = await api.get("operator", f"/v1/subscriptions/{pull}/feed?limit=1")
    assert [e["hub_id"] for e in page["events"]] == [green["hub_id"]]
    assert page["next"] == events[1]["id"], "the cursor stood on the hidden event"
    resp = await api.client.post(
        f"/v1/subscriptions/{hook['id']}/dead-letters/replay", headers=api.auth("operator")
    )
    assert resp.status == 200 and (await resp.json())["replayed"] == 1


async def test_owner_cursor_does_not_move_onto_an_alert_withheld_since(dapi: Api) -> None:
    """Finding 3, after narrowing: when a sender updates an alert to withhold it from a partner
    that had received it, the partner's pull feed leaves it out and its `next` cursor stays on
    the last event it may see."""
    api = dapi
    await _nodes(api)
    pull = (await api.subscribe("rs-cert"))["id"]
    _, first = await api.post("al-cert", _with_domain("a-1", "first.phish.example"))
    _, later = await api.post("al-cert", _with_domain("a-2", "later.phish.example"))
    events = await api.wait_for_feed("rs-cert", pull, 2)
    narrowed = _with_domain("a-2", "later.phish.example", revision=2, **RED_TO_ME)
    status, _ = await api.post("al-cert", narrowed)
    assert status == 200
    status, page = await api.get(
        "rs-cert", f"/v1/subscriptions/{pull}/feed?after={events[0]['id']}"
    )
    assert page == {"events": [], "next": events[0]["id"]}
    status, page = await api.get("rs-cert", f"/v1/subscriptions/{pull}/feed")
    assert [e["hub_id"] for e in page["events"]] == [first["hub_id"]]
    assert page["next"] == events[0]["id"] and later["hub_id"] not in str(page)


async def test_listing_paging_does_not_count_hidden_alerts(api: Api) -> None:
    """Finding 4: thousands of alerts a node may not see change nothing in its listing: its
    one visible alert, and `next` null, as in a hub holding only that alert."""
    await _nodes(api)
    _, seen = await api.post("al-cert", _with_domain("seen", "seen.phish.example"))
    for start in range(0, 5200, 500):
        batch = [
            _with_domain(f"red-{n}", f"red-{n}.phish.example", **RED_TO_ME)
            for n in range(start, min(start + 500, 5200))
        ]
        resp = await api.client.post(
            "/v1/alerts/batch", json={"alerts": batch}, headers=api.auth("al-cert")
        )
        assert resp.status == 200
    refused("leak: reads by an excluded reader (must show nothing hidden)", 2)
    for query in ("limit=50", "limit=1&since=2000-01-01T00:00:00Z"):
        status, page = await api.get("rs-cert", f"/v1/alerts?{query}")
        assert status == 200
        assert [a["hub_id"] for a in page["alerts"]] == [seen["hub_id"]]
        if query.startswith("limit=50"):
            assert page["next"] is None
    # A full page says there may be more: the next page is then empty and final.
    status, page = await api.get("rs-cert", "/v1/alerts?limit=1")
    status, rest = await api.get("rs-cert", f"/v1/alerts?limit=1&after={page['next']}")
    assert rest == {"alerts": [], "next": None}


async def _wait_dead_letters(api: Api, sub_id: str, count: int) -> None:
    """Until the subscription holds `count` dead letters and nothing waits for a retry (read
    from Redis: what a reader is shown is what is under test)."""
    hub = api.client.server.app[HUB]
    keys, redis = hub.keys, hub.redis
    async with asyncio.timeout(20):
        while True:
            dead = await redis.hlen(keys.dead_letters(sub_id))
            waiting = await redis.zcard(keys.retries(sub_id))
            if dead >= count and waiting == 0:
                return
            await asyncio.sleep(0.05)


async def test_a_node_registered_later_reads_no_earlier_restricted_alert(api: Api) -> None:
    """Finding 2, what an operator-created node may see: a node registered for ME after a RED
    alert to "ME" and an AMBER alert were posted gets neither (not by id, listing or feed), an
    earlier GREEN one and a later RED one to "ME" it does; the node registered before gets all."""
    await _nodes(api)
    _, red = await api.post("al-cert", _with_domain("red-1", "r1.phish.example", tlp="RED",
                                                     share={"recipients": ["ME"]}))  # fmt: skip
    _, amber = await api.post("al-cert", _with_domain("amber-1", "a1.phish.example", tlp="AMBER"))
    _, green = await api.post("al-cert", _with_domain("green-1", "g1.phish.example"))
    await api.add_node("me-late", "ME")
    _, later = await api.post("al-cert", _with_domain("red-2", "r2.phish.example", tlp="RED",
                                                       share={"recipients": ["ME"]}))  # fmt: skip
    refused("leak: reads by an excluded reader (must show nothing hidden)", 3)
    for hidden in (red, amber):
        status, _ = await api.get("me-late", f"/v1/alerts/{hidden['hub_id']}")
        assert status == 404
    status, page = await api.get("me-late", "/v1/alerts?limit=50")
    assert [a["hub_id"] for a in page["alerts"]] == [later["hub_id"], green["hub_id"]]
    status, page = await api.get("me-cert", "/v1/alerts?limit=50")
    assert [a["hub_id"] for a in page["alerts"]] == [
        later["hub_id"],
        green["hub_id"],
        amber["hub_id"],
        red["hub_id"],
    ]

"""Fact-checks: posting (roles, revisions, retraction), who sees them (never wider than the alert
they were posted on), the alert.fact_checked events that reach whoever had a report of the
cluster, and the ClaimReview JSON-LD."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.ids import new_ulid
from tests.conftest import Api, disinfo_alert
from tests.delivery.test_webhooks import wait_status
from tests.factcheck import claimreview_rules
from tests.factcheck.helpers import cluster_of_two, fact_check_body, post_fact_check
from tests.receivers import Receiver
from tests.sse_client import SseReader

pytestmark = pytest.mark.timeout(60)
CHECKER_ROLES = ("subscribe", "fact-check")


async def add_nodes(api: Api) -> None:
    for node, country in (("rs-cert", "RS"), ("al-cert", "AL"), ("me-cert", "ME")):
        await api.add_node(node, country)
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=CHECKER_ROLES)
    await api.add_node("fc-rs", "RS", kind="civil-society", roles=CHECKER_ROLES)


async def events_of(api: Api, node: str, sub_id: str, wanted: str, count: int = 1) -> list[dict]:
    """The feed's events of type `wanted` once it holds `count` of them (or at the deadline)."""
    async with asyncio.timeout(10):
        while True:
            found = [e for e in await api.feed(node, sub_id) if e["type"] == wanted]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)


async def settle(api: Api, node: str, sub_id: str, last_hub_id: str) -> list[dict[str, Any]]:
    """The feed once an alert posted after everything else (`last_hub_id`) has reached it."""
    return await api.wait_for_feed(node, sub_id, 1, last=last_hub_id)


async def test_resend_update_and_stale_revisions_work_as_for_alerts(api: Api) -> None:
    """The same fact-check again is unchanged, a higher revision updates it, a lower one or
    other content under the same revision is 409, and its id cannot move to another alert."""
    await add_nodes(api)
    green, _, cluster = await cluster_of_two(api)
    body = fact_check_body()
    status, first = await post_fact_check(api, "fc-ba", green, body)
    assert status == 201, first
    assert first["status"] == "created" and first["revision"] == 1
    assert first["hub_id"] == green and first["cluster_id"] == cluster
    fact_check_id = first["fact_check_id"]
    status, again = await post_fact_check(api, "fc-ba", green, body)
    assert (status, again) == (200, {"fact_check_id": fact_check_id, "status": "unchanged"})
    status, other = await post_fact_check(api, "fc-ba", green, {**body, "summary": "changed"})
    assert status == 409 and other["error"] == "conflict"
    revised = fact_check_body(revision=2, rating={"value": 2, "alternate_name": "Misleading"})
    status, updated = await post_fact_check(api, "fc-ba", green, revised)
    assert (status, updated) == (200, {"fact_check_id": fact_check_id, "status": "updated",
                                       "revision": 2})  # fmt: skip
    status, stale = await post_fact_check(api, "fc-ba", green, body)
    assert status == 409 and "older" in stale["message"]
    _, elsewhere_alert = await api.post("rs-cert", disinfo_alert("d-other", claim="other claim"))
    status, moved = await post_fact_check(api, "fc-ba", elsewhere_alert["hub_id"], revised)
    assert status == 409 and "another alert" in moved["message"]
    status, shown = await api.get("fc-ba", f"/v1/alerts/{green}")
    (fact_check,) = shown["fact_checks"]
    assert fact_check["fact_check_id"] == fact_check_id and fact_check["revision"] == 2
    assert fact_check["rating"] == {"value": 2, "alternate_name": "Misleading", "best": 5,
                                    "worst": 1}  # fmt: skip
    assert fact_check["checker"] == "fc-ba" and fact_check["status"] == "active"


async def test_only_fact_checkers_post_and_only_on_alerts_they_may_see(api: Api) -> None:
    """A node without the fact-check role gets 403; an alert the checker may not see is 404
    exactly as an unknown id; a bad body is 422 naming its pointer."""
    await add_nodes(api)
    green, red, _ = await cluster_of_two(api)
    status, body = await post_fact_check(api, "rs-cert", green, fact_check_body())
    assert status == 403 and body["error"] == "forbidden"
    unknown = new_ulid()
    status_red, answer_red = await post_fact_check(api, "fc-ba", red, fact_check_body())
    status_unknown, answer_unknown = await post_fact_check(api, "fc-ba", unknown, fact_check_body())
    assert status_red == status_unknown == 404
    assert answer_red["message"].replace(red, "<id>") == answer_unknown["message"].replace(
        unknown, "<id>"
    )
    bad = fact_check_body(rating={"value": 9, "alternate_name": "False"})
    status, problems = await post_fact_check(api, "fc-ba", green, bad)
    assert status == 422 and problems["details"][0]["pointer"] == "/rating/value"
    retracted = disinfo_alert("d-gone", claim="a claim withdrawn")
    _, gone = await api.post("rs-cert", retracted)
    await api.client.post(f"/v1/alerts/{gone['hub_id']}/retract", headers=api.auth("rs-cert"))
    status, refused = await post_fact_check(api, "fc-ba", gone["hub_id"], fact_check_body())
    assert status == 409 and "retracted" in refused["message"]


async def test_a_fact_check_is_shown_only_to_who_may_see_its_alert(api: Api) -> None:
    """A fact-check posted on a RED report shows on every report of the cluster to the nodes
    that may see the RED report, and to nobody else, not even as an empty entry."""
    await add_nodes(api)
    green, red, _ = await cluster_of_two(api, red_to="fc-rs")
    status, answer = await post_fact_check(api, "fc-rs", red, fact_check_body("fc-secret"))
    assert status == 201, answer
    for node, sees in (("fc-rs", True), ("al-cert", True), ("rs-cert", False), ("fc-ba", False),
                       ("me-cert", False), ("operator", False)):  # fmt: skip
        status, alert = await api.get(node, f"/v1/alerts/{green}")
        assert status == 200
        shown = [f["fact_check_id"] for f in alert["fact_checks"]]
        assert shown == ([answer["fact_check_id"]] if sees else []), node
        if not sees:
            status, text = 200, str(alert)
            assert "fc-secret" not in text and answer["fact_check_id"] not in text


async def test_retraction_by_the_checker_only(api: Api) -> None:
    """Only the checker retracts its fact-check (403 for another checker who may see it, 404
    for a fact-check id not on that alert); a retracted one shows as retracted, cannot be
    updated, and a second retraction answers the same."""
    await add_nodes(api)
    green, _, _ = await cluster_of_two(api)
    _, posted = await post_fact_check(api, "fc-ba", green, fact_check_body())
    path = f"/v1/alerts/{green}/fact-checks/{posted['fact_check_id']}/retract"
    resp = await api.client.post(path, json={"reason": "x"}, headers=api.auth("fc-rs"))
    assert resp.status == 403
    other = f"/v1/alerts/{green}/fact-checks/{new_ulid()}/retract"
    assert (await api.client.post(other, headers=api.auth("fc-ba"))).status == 404
    for _ in range(2):
        reason = {"reason": "wrong video"}
        resp = await api.client.post(path, json=reason, headers=api.auth("fc-ba"))
        assert resp.status == 200
        answer = await resp.json()
        assert answer == {"fact_check_id": posted["fact_check_id"], "status": "retracted"}
    _, alert = await api.get("rs-cert", f"/v1/alerts/{green}")
    (shown,) = alert["fact_checks"]
    assert shown["status"] == "retracted" and shown["retraction_reason"] == "wrong video"
    status, refused = await post_fact_check(api, "fc-ba", green, fact_check_body(revision=2))
    assert status == 409 and "retracted" in refused["message"]


async def test_every_partner_that_had_a_report_of_the_cluster_gets_the_verdict(api: Api) -> None:
    """alert.fact_checked reaches each subscription that had any report of the cluster and
    whose owner may see the alert it was posted on; not one that never had the claim, nor one
    whose owner may not see that alert. Updates and retraction follow it."""
    await add_nodes(api)
    subs = {node: (await api.subscribe(node))["id"] for node in ("rs-cert", "al-cert", "me-cert")}
    subs["fc-ba"] = (await api.subscribe("fc-ba", kinds=["threat"]))["id"]  # never had it
    green, red, cluster = await cluster_of_two(api, red_to="fc-rs")
    _, on_red = await post_fact_check(api, "fc-rs", red, fact_check_body("fc-red"))
    _, on_green = await post_fact_check(api, "fc-ba", green, fact_check_body("fc-green"))
    revised = fact_check_body("fc-green", revision=2)
    await post_fact_check(api, "fc-ba", green, revised)
    retract = f"/v1/alerts/{green}/fact-checks/{on_green['fact_check_id']}/retract"
    assert (await api.client.post(retract, headers=api.auth("fc-ba"))).status == 200
    _, last = await api.post("rs-cert", disinfo_alert("d-end", claim="the end"))
    got: dict[str, list[tuple[str, str, int]]] = {}
    for node, sub in subs.items():
        events = await settle(api, node, sub, last["hub_id"]) if node != "fc-ba" else []
        if node == "fc-ba":
            await asyncio.sleep(0)  # its filter drops the last alert: read what it has
            events = await api.feed(node, sub)
        got[node] = [
            (e["type"], e["fact_check"]["id"], e["revision"])
            for e in events
            if e["type"].startswith("alert.fact_check")
        ]
        for e in events:
            if "fact_check" in e:
                assert e["cluster_id"] == cluster and e["alert"]["hub_id"] == e["hub_id"]
    expected_green = [("alert.fact_checked", "fc-green", 1), ("alert.fact_checked", "fc-green", 2),
                      ("alert.fact_check_retracted", "fc-green", 2)]  # fmt: skip
    assert got["rs-cert"] == expected_green  # may not see the RED report's fact-check
    assert got["me-cert"] == expected_green
    assert got["al-cert"] == [("alert.fact_checked", "fc-red", 1), *expected_green]
    assert got["fc-ba"] == []
    assert on_red["fact_check_id"] not in str(await api.feed("rs-cert", subs["rs-cert"]))


async def test_the_operator_reading_a_feed_is_not_told_of_a_red_report(api: Api) -> None:
    """A partner's feed that had the claim only from a RED report gets the verdict on a GREEN
    report of it; the operator reading that feed does not: the event would tell it that the
    partner had a report of the claim it may not see."""
    await add_nodes(api)
    _, green = await api.post("rs-cert", disinfo_alert("d-green"))  # before me-cert subscribes
    sub = (await api.subscribe("me-cert"))["id"]
    red = disinfo_alert("d-red", tlp="RED", share={"recipients": ["me-cert"]})
    await api.post("al-cert", red)
    await post_fact_check(api, "fc-ba", green["hub_id"], fact_check_body())
    (event,) = await events_of(api, "me-cert", sub, "alert.fact_checked")
    assert event["hub_id"] == green["hub_id"]
    status, page = await api.get("operator", f"/v1/subscriptions/{sub}/feed")
    assert status == 200 and page["events"] == [] and page["next"] is None


async def test_claimreview_json_ld_meets_schema_org_and_google(api: Api) -> None:
    """GET /v1/alerts/{id}/claimreview answers application/ld+json with one ClaimReview per live
    fact-check the caller may see, each meeting every requirement and recommendation of
    schema.org and Google's guidelines; only TLP:CLEAR reports' URLs are added as appearances."""
    await add_nodes(api)
    # One content (tracking parameters do not count), two spellings of its URL.
    clear = disinfo_alert("d-clear", tlp="CLEAR", urls=["https://public.example/p?utm_source=x"])
    _, first = await api.post("rs-cert", clear)
    green = disinfo_alert("d-green2", urls=["https://public.example/p?utm_source=community"])
    _, second = await api.post("me-cert", green)
    assert first["cluster_id"] == second["cluster_id"]
    body = fact_check_body(
        first_appearance="https://t.example/channel/4411",
        claim_author={"name": "@example_channel", "url": "https://t.example/channel"},
        claim_date="2026-11-20T07:00:00Z",
        author_url="https://factcheck.example/",
    )
    _, posted = await post_fact_check(api, "fc-ba", second["hub_id"], body)
    _, gone = await post_fact_check(api, "fc-ba", second["hub_id"], fact_check_body("fc-2"))
    path = f"/v1/alerts/{second['hub_id']}/fact-checks/{gone['fact_check_id']}/retract"
    await api.client.post(path, headers=api.auth("fc-ba"))
    resp = await api.client.get(f"/v1/alerts/{first['hub_id']}/claimreview",
                                headers=api.auth("al-cert"))  # fmt: skip
    assert resp.status == 200 and resp.content_type == "application/ld+json"
    (review,) = await resp.json(content_type=None)
    assert claimreview_rules.errors(review) == []
    assert claimreview_rules.missing_recommended(review) == []
    assert review["identifier"] == posted["fact_check_id"]
    assert review["author"]["name"] == "Node fc-ba"
    urls = [a["url"] for a in review["itemReviewed"]["appearance"]]
    assert urls == ["https://t.example/channel/4411", "https://public.example/p?utm_source=x"]
    minimal = fact_check_body("fc-3", appearances=[])
    await post_fact_check(api, "fc-ba", second["hub_id"], minimal)
    resp = await api.client.get(f"/v1/alerts/{second['hub_id']}/claimreview",
                                headers=api.auth("fc-ba"))  # fmt: skip
    reviews = await resp.json(content_type=None)
    assert len(reviews) == 2
    assert all(claimreview_rules.errors(r) == [] for r in reviews)


def test_the_rules_catch_what_google_and_schema_org_refuse() -> None:
    """The checker itself: each requirement it states fails a document that breaks it."""
    good = {
        "@context": "https://schema.org", "@type": "ClaimReview", "url": "https://f.example/a",
        "claimReviewed": "The earth is flat", "datePublished": "2026-11-21",
        "author": {"@type": "Organization", "name": "Checkers"},
        "reviewRating": {"@type": "Rating", "ratingValue": 1, "bestRating": 5, "worstRating": 1,
                         "alternateName": "False", "name": "False"},
        "itemReviewed": {"@type": "Claim", "appearance": "https://x.example/1",
                         "firstAppearance": {"@type": "CreativeWork", "url": "https://x.example/1"},
                         "author": {"@type": "Person", "name": "A"}, "datePublished": "2026-11-20"},
    }  # fmt: skip
    assert claimreview_rules.errors(good) == []
    assert claimreview_rules.missing_recommended(good) == []
    broken = [
        {**good, "@context": "https://example.org"},
        {**good, "url": "/relative"},
        {k: v for k, v in good.items() if k != "claimReviewed"},
        {**good, "reviewRating": {**good["reviewRating"], "alternateName": ""}},
        {**good, "reviewRating": {**good["reviewRating"], "ratingValue": 7}},
        {**good, "author": {"@type": "Organization"}},
        {**good, "itemReviewed": {"@type": "CreativeWork"}},
        {**good, "itemReviewed": {**good["itemReviewed"], "appearance": "not a url"}},
        {**good, "claimReviewed": "False"},
        {**good, "datePublished": "yesterday"},
    ]
    for doc in broken:
        assert claimreview_rules.errors(doc), doc


async def test_the_verdict_arrives_by_webhook_and_sse(dapi: Api, receivers: list[Receiver]) -> None:
    """A CERT that had the claim gets alert.fact_checked, with the fact-check and the report it
    is on, as a signed webhook POST and as an SSE frame, after the report's own event."""
    api = dapi
    await add_nodes(api)
    receiver = await Receiver().start()
    receivers.append(receiver)
    hook = await api.subscribe("me-cert", {"type": "webhook", "url": receiver.url})
    await wait_status(api, "me-cert", hook["id"], "active")
    pull = (await api.subscribe("me-cert"))["id"]
    stream = await api.client.get(
        f"/v1/subscriptions/{pull}/events",
        headers={**api.auth("me-cert"), "Accept": "text/event-stream"},
    )
    assert stream.status == 200
    _, posted = await api.post("rs-cert", disinfo_alert("d-1"))
    _, checked = await post_fact_check(api, "fc-ba", posted["hub_id"], fact_check_body())
    reader = SseReader(stream)
    frames = [await reader.next_event(10), await reader.next_event(10)]
    stream.close()
    assert [f["event"] for f in frames] == ["alert.created", "alert.fact_checked"]
    event = frames[1]["data"]
    assert event["fact_check"]["fact_check_id"] == checked["fact_check_id"]
    assert event["alert"]["hub_id"] == posted["hub_id"] == event["hub_id"]
    await receiver.wait_for(lambda r: len(r.deliveries) == 2)
    pushed = receiver.deliveries[1]
    assert pushed.event == {**event, "alert": pushed.event["alert"]}
    assert pushed.headers["webhook-id"] == event["id"] and "webhook-signature" in pushed.headers

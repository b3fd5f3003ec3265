"""Posting, reading, listing and retracting alerts over HTTP, against a real Redis."""

from __future__ import annotations

import pytest
import redis

from hub.store.keys import Keys
from tests.conftest import Api, disinfo_alert, load_example, threat_alert


@pytest.fixture
async def nodes(api: Api) -> Api:
    await api.add_node("al-cert", "AL")
    await api.add_node("rs-cert", "RS")
    await api.add_node("me-cert", "ME")
    await api.add_node("factcheck-ba", "BA", "civil-society", roles=("subscribe",))
    return api


def event_types(redis_url: str) -> list[str]:
    """The types of the alert entries in the event log (not the nodes' registrations)."""
    client = redis.Redis.from_url(redis_url)
    try:
        types = [f[b"type"].decode() for _, f in client.xrange(Keys().events)]
    finally:
        client.close()
    return [t for t in types if t != "node_registered"]


async def test_new_alert_is_created(nodes: Api, redis_url: str) -> None:
    """A new report answers 201 created with hub id, revision and cluster id, and logs one event."""
    status, body = await nodes.post("al-cert", threat_alert())
    assert status == 201
    assert body["status"] == "created"
    assert body["revision"] == 1
    assert body["hub_id"] and body["cluster_id"].startswith("cl_")
    assert event_types(redis_url) == ["created"]


async def test_resend_is_unchanged_and_not_logged_again(nodes: Api, redis_url: str) -> None:
    """The same id and revision again answers 200 unchanged with the same hub id; no new event."""
    _, first = await nodes.post("al-cert", threat_alert())
    status, again = await nodes.post("al-cert", threat_alert())
    assert status == 200
    assert again == {"hub_id": first["hub_id"], "status": "unchanged"}
    assert event_types(redis_url) == ["created"]


async def test_same_revision_with_other_content_conflicts(nodes: Api) -> None:
    """A changed body under the same revision is a 409, not a silent overwrite."""
    await nodes.post("al-cert", threat_alert())
    status, body = await nodes.post("al-cert", threat_alert(title="Another title"))
    assert status == 409
    assert body["error"] == "conflict"


async def test_higher_revision_updates(nodes: Api, redis_url: str) -> None:
    """A higher revision answers 200 updated and replaces the stored alert."""
    _, first = await nodes.post("al-cert", threat_alert())
    status, body = await nodes.post("al-cert", threat_alert(revision=2, title="Now worse"))
    assert status == 200
    assert body == {"hub_id": first["hub_id"], "status": "updated", "revision": 2}
    _, stored = await nodes.get("me-cert", f"/v1/alerts/{first['hub_id']}")
    assert stored["title"] == "Now worse" and stored["revision"] == 2
    assert event_types(redis_url) == ["created", "updated"]


async def test_lower_revision_conflicts(nodes: Api) -> None:
    """A revision lower than the stored one is a 409."""
    await nodes.post("al-cert", threat_alert(revision=3))
    status, body = await nodes.post("al-cert", threat_alert(revision=2))
    assert status == 409 and body["error"] == "conflict" and body["error"] == "conflict"


async def test_same_content_from_another_node_corroborates(nodes: Api, redis_url: str) -> None:
    """Another node's report of the same content joins the first report's cluster."""
    _, first = await nodes.post("al-cert", threat_alert("al-1"))
    status, body = await nodes.post(
        "me-cert", threat_alert("me-9", title="Other words", tlp="AMBER")
    )
    assert status == 201
    assert body["status"] == "corroborated"
    assert body["duplicate_of"] == first["hub_id"]
    assert body["cluster_id"] == first["cluster_id"]
    _, stored = await nodes.get("rs-cert", f"/v1/alerts/{first['hub_id']}")
    assert [r["node"] for r in stored["reporters"]] == ["al-cert", "me-cert"]
    assert event_types(redis_url) == ["created", "corroborated"]


async def test_cyrillic_and_latin_reports_meet(nodes: Api) -> None:
    """One Serbian claim in Cyrillic and in Latin script is one incident."""
    _, first = await nodes.post("rs-cert", disinfo_alert("rs-1"))
    latin = disinfo_alert("al-1", claim="NATO gomila trupe kod Zvečana!", language="sr-Latn")
    latin["urls"] = ["https://NEWS.example:443/article?utm_campaign=x&id=77#top"]
    status, body = await nodes.post("al-cert", latin)
    assert status == 201
    assert body["status"] == "corroborated" and body["duplicate_of"] == first["hub_id"]


async def test_upper_case_scheme_and_host_are_accepted_and_compared_folded(nodes: Api) -> None:
    """An alert whose URL has an upper-case scheme and host is accepted, and dedup compares it
    folded: the same content with the plain lower-case URL corroborates it."""
    shouted = disinfo_alert("rs-1", urls=["HTTPS://News.Example:443/x"])
    status, first = await nodes.post("rs-cert", shouted)
    assert status == 201, first
    status, body = await nodes.post(
        "al-cert", disinfo_alert("al-1", urls=["https://news.example/x"])
    )
    assert status == 201
    assert body["status"] == "corroborated" and body["duplicate_of"] == first["hub_id"]
    _, stored = await nodes.get("rs-cert", f"/v1/alerts/{first['hub_id']}")
    assert stored["urls"] == ["HTTPS://News.Example:443/x"]  # the sender's text is kept


async def test_other_language_report_is_related(nodes: Api) -> None:
    """An Albanian report of the same campaign (same URL, other claim) is linked as related."""
    _, serbian = await nodes.post("rs-cert", disinfo_alert("rs-1"))
    albanian = disinfo_alert("al-1", claim="NATO grumbullon trupa pranë Zveçanit", language="sq")
    status, body = await nodes.post("al-cert", albanian)
    assert status == 201 and body["status"] == "created"
    _, stored = await nodes.get("me-cert", f"/v1/alerts/{body['hub_id']}")
    assert stored["related"] == [serbian["hub_id"]]
    _, other = await nodes.get("me-cert", f"/v1/alerts/{serbian['hub_id']}")
    assert other["related"] == [body["hub_id"]]


async def test_dedup_never_reveals_an_unseen_alert(nodes: Api) -> None:
    """A duplicate of a RED alert the sender may not see is answered as new content."""
    _, red = await nodes.post(
        "al-cert", threat_alert("al-red", tlp="RED", share={"recipients": ["me-cert"]})
    )
    status, body = await nodes.post("rs-cert", threat_alert("rs-1"))
    assert status == 201
    assert body["status"] == "created"
    assert "duplicate_of" not in body
    assert red["hub_id"] not in str(body)
    _, own = await nodes.get("rs-cert", f"/v1/alerts/{body['hub_id']}")
    assert [r["node"] for r in own["reporters"]] == ["rs-cert"]
    assert red["hub_id"] not in str(own)
    status, _ = await nodes.get("rs-cert", f"/v1/alerts/{red['hub_id']}")
    assert status == 404
    # A recipient that sees both sees one incident reported twice.
    _, seen = await nodes.get("me-cert", f"/v1/alerts/{body['hub_id']}")
    assert [r["node"] for r in seen["reporters"]] == ["al-cert", "rs-cert"]


@pytest.mark.parametrize(
    ("tlp", "share", "reader", "visible"),
    [
        ("GREEN", {}, "factcheck-ba", True),
        ("AMBER", {}, "factcheck-ba", False),
        ("AMBER", {}, "rs-cert", True),
        ("AMBER", {"recipients": ["factcheck-ba"]}, "factcheck-ba", True),
        ("AMBER+STRICT", {}, "factcheck-ba", False),
        ("RED", {"recipients": ["me-cert"]}, "me-cert", True),
        ("RED", {"recipients": ["me-cert"]}, "rs-cert", False),
        ("GREEN", {"withhold_from": ["RS"]}, "rs-cert", False),
        ("GREEN", {"withhold_from": ["rs-cert"]}, "rs-cert", False),
        ("GREEN", {"withhold_from": ["RS"]}, "me-cert", True),
    ],
)
async def test_visibility_on_get_and_list(
    nodes: Api, tlp: str, share: dict, reader: str, visible: bool
) -> None:
    """What the sharing policy withholds is a 404 on GET and absent from the listing."""
    _, posted = await nodes.post("al-cert", threat_alert(tlp=tlp, share=share))
    status, body = await nodes.get(reader, f"/v1/alerts/{posted['hub_id']}")
    assert status == (200 if visible else 404)
    if not visible:
        assert body["error"] == "not_found"
    _, listing = await nodes.get(reader, "/v1/alerts")
    assert (posted["hub_id"] in [a["hub_id"] for a in listing["alerts"]]) is visible


async def test_node_default_withholding_applies(nodes: Api) -> None:
    """A node's standing withhold_from applies to all of its alerts."""
    await nodes.add_node("xk-cert", "XK", withhold_from=("RS",))
    _, posted = await nodes.post("xk-cert", threat_alert())
    status, _ = await nodes.get("rs-cert", f"/v1/alerts/{posted['hub_id']}")
    assert status == 404
    status, _ = await nodes.get("al-cert", f"/v1/alerts/{posted['hub_id']}")
    assert status == 200


async def test_stored_alert_has_hub_fields(nodes: Api) -> None:
    """GET returns the alert with sender, country, received_at, cluster, reporters, status."""
    _, posted = await nodes.post("al-cert", threat_alert())
    status, stored = await nodes.get("rs-cert", f"/v1/alerts/{posted['hub_id']}")
    assert status == 200
    assert stored["hub_id"] == posted["hub_id"]
    assert stored["sender"] == "al-cert" and stored["source_country"] == "AL"
    assert stored["status"] == "active" and stored["received_at"].endswith("Z")
    assert stored["cluster_id"] == posted["cluster_id"]
    assert stored["indicators"][0] == {"type": "domain", "value": "e-albania-gov.example"}


async def test_expired_alert_shows_expired(nodes: Api) -> None:
    """An alert past its valid_until reads as expired."""
    _, posted = await nodes.post("al-cert", threat_alert(valid_until="2020-01-01T00:00:00Z"))
    _, stored = await nodes.get("al-cert", f"/v1/alerts/{posted['hub_id']}")
    assert stored["status"] == "expired"


async def test_unknown_and_malformed_ids_are_404(nodes: Api) -> None:
    """An unknown hub id and a malformed one are both 404 not_found."""
    for hub_id in ("01JZZZZZZZZZZZZZZZZZZZZZZZ", "nope", "%00"):
        status, body = await nodes.get("al-cert", f"/v1/alerts/{hub_id}")
        assert status == 404 and body["error"] == "not_found"


async def test_sender_cannot_be_impersonated(nodes: Api) -> None:
    """A body naming another sender or another source country is a 403, and nothing is stored."""
    status, body = await nodes.post("al-cert", threat_alert(sender="rs-cert"))
    assert status == 403 and body["error"] == "forbidden"
    status, _ = await nodes.post("al-cert", threat_alert(source_country="RS"))
    assert status == 403
    status, ok = await nodes.post("al-cert", threat_alert(sender="al-cert", source_country="AL"))
    assert status == 201
    _, listing = await nodes.get("al-cert", "/v1/alerts")
    assert [a["hub_id"] for a in listing["alerts"]] == [ok["hub_id"]]


async def test_subscriber_without_publish_role_is_forbidden(nodes: Api) -> None:
    """Posting needs the publish role."""
    status, body = await nodes.post("factcheck-ba", threat_alert())
    assert status == 403 and body["error"] == "forbidden"


async def test_retract(nodes: Api, redis_url: str) -> None:
    """The sender retracts; the alert reads retracted; the event log carries alert.retracted."""
    _, posted = await nodes.post("al-cert", threat_alert())
    path = f"/v1/alerts/{posted['hub_id']}/retract"
    resp = await nodes.client.post(
        path, json={"reason": "false positive"}, headers=nodes.auth("al-cert")
    )
    assert resp.status == 200
    assert await resp.json() == {"hub_id": posted["hub_id"], "status": "retracted"}
    _, stored = await nodes.get("rs-cert", f"/v1/alerts/{posted['hub_id']}")
    assert stored["status"] == "retracted"
    assert stored["retraction_reason"] == "false positive"
    resp = await nodes.client.post(path, headers=nodes.auth("al-cert"))
    assert resp.status == 200
    assert event_types(redis_url) == ["created", "retracted"]
    status, body = await nodes.post("al-cert", threat_alert(revision=2))
    assert status == 409 and body["error"] == "conflict"


async def test_only_the_sender_retracts(nodes: Api) -> None:
    """Another node that can see the alert gets 403; one that cannot see it gets 404."""
    _, posted = await nodes.post("al-cert", threat_alert(share={"withhold_from": ["ME"]}))
    path = f"/v1/alerts/{posted['hub_id']}/retract"
    resp = await nodes.client.post(path, json={}, headers=nodes.auth("rs-cert"))
    assert resp.status == 403
    resp = await nodes.client.post(path, json={}, headers=nodes.auth("me-cert"))
    assert resp.status == 404


async def test_listing_newest_first_with_paging_and_filters(nodes: Api) -> None:
    """The listing is newest first, pages by `next`, and filters by kind and target country."""
    posted = []
    for i in range(5):
        alert = threat_alert(f"t-{i}", indicators=[{"type": "ipv4", "value": f"203.0.113.{i}"}])
        posted.append((await nodes.post("al-cert", alert))[1]["hub_id"])
    _, d = await nodes.post("rs-cert", disinfo_alert())
    _, page = await nodes.get("me-cert", "/v1/alerts?limit=4")
    assert [a["hub_id"] for a in page["alerts"]] == [d["hub_id"], *posted[::-1][:3]]
    _, rest = await nodes.get("me-cert", f"/v1/alerts?limit=4&after={page['next']}")
    assert [a["hub_id"] for a in rest["alerts"]] == posted[1::-1]
    assert rest["next"] is None
    _, threats = await nodes.get("me-cert", "/v1/alerts?kind=disinformation")
    assert [a["hub_id"] for a in threats["alerts"]] == [d["hub_id"]]
    _, xk = await nodes.get("me-cert", "/v1/alerts?target_country=XK")
    assert [a["hub_id"] for a in xk["alerts"]] == [d["hub_id"]]
    _, future = await nodes.get("me-cert", "/v1/alerts?since=2999-01-01T00:00:00Z")
    assert future["alerts"] == []


async def test_listing_refuses_bad_parameters(nodes: Api) -> None:
    """Bad query parameters are a 422 naming each one."""
    status, body = await nodes.get(
        "al-cert", "/v1/alerts?limit=0&kind=rumour&since=yesterday&after=x&target_country=rs"
    )
    assert status == 422
    pointers = {d["pointer"] for d in body["details"]}
    assert pointers == {"/limit", "/kind", "/since", "/after", "/target_country"}


async def test_bad_query_parameters_are_counted_in_plain_english(nodes: Api) -> None:
    """One bad parameter is "1 bad query parameter", two are "2 bad query parameters", on
    the listing, a feed and the sharing report alike."""
    sub = await nodes.subscribe("al-cert")
    for path, one, two in (
        ("/v1/alerts", "limit=0", "limit=0&kind=rumour"),
        (f"/v1/subscriptions/{sub['id']}/feed", "limit=0", "limit=0&after=x"),
        ("/v1/reports/sharing", "format=xml", "format=xml&since=yesterday"),
    ):
        caller = "operator" if "reports" in path else "al-cert"
        status, body = await nodes.get(caller, f"{path}?{one}")
        assert (status, body["message"]) == (422, "1 bad query parameter"), path
        status, body = await nodes.get(caller, f"{path}?{two}")
        assert (status, body["message"]) == (422, "2 bad query parameters"), path


async def test_batch_each_alert_on_its_own(nodes: Api) -> None:
    """A batch answers per alert: good ones stored, bad ones rejected with their own error."""
    bad = threat_alert("t-bad")
    del bad["title"]
    alerts = [threat_alert("t-1"), bad, threat_alert("t-1"), threat_alert("t-3", sender="rs-cert")]
    resp = await nodes.client.post(
        "/v1/alerts/batch", json={"alerts": alerts}, headers=nodes.auth("al-cert")
    )
    assert resp.status == 200
    results = (await resp.json())["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == ["created", "rejected", "unchanged", "rejected"]
    assert results[1]["error"]["error"] == "validation_failed"
    assert results[1]["error"]["details"][0]["pointer"] == "/title"
    assert results[3]["error"]["error"] == "forbidden"


async def test_batch_over_500_is_refused(nodes: Api) -> None:
    """More than 500 alerts in one batch is a 422 and nothing is stored."""
    alerts = [threat_alert(f"t-{i}") for i in range(501)]
    resp = await nodes.client.post(
        "/v1/alerts/batch", json={"alerts": alerts}, headers=nodes.auth("al-cert")
    )
    assert resp.status == 422
    _, listing = await nodes.get("al-cert", "/v1/alerts")
    assert listing["alerts"] == []


async def test_published_examples_cluster_and_link(nodes: Api) -> None:
    """The schema examples of one campaign: Cyrillic and Latin reports corroborate; the Albanian
    report of the same URL is related to both."""
    _, cyrillic = await nodes.post("rs-cert", load_example("api-disinformation-sr-cyrl.json"))
    status, latin = await nodes.post("me-cert", load_example("disinformation-sr-latn-copy.json"))
    assert status == 201 and latin["status"] == "corroborated"
    assert latin["duplicate_of"] == cyrillic["hub_id"]
    status, albanian = await nodes.post(
        "al-cert", load_example("disinformation-sq-same-campaign.json")
    )
    assert status == 201 and albanian["status"] == "created"
    _, stored = await nodes.get("rs-cert", f"/v1/alerts/{albanian['hub_id']}")
    assert sorted(stored["related"]) == sorted([cyrillic["hub_id"], latin["hub_id"]])


async def test_update_relinks_related_alerts(nodes: Api) -> None:
    """An update that changes an alert's indicators changes what it is related to."""
    _, first = await nodes.post("al-cert", disinfo_alert("al-1", urls=["https://a.example/x"]))
    _, other = await nodes.post(
        "rs-cert", disinfo_alert("rs-1", claim="druga tvrdnja", urls=["https://a.example/x"])
    )
    _, stored = await nodes.get("me-cert", f"/v1/alerts/{other['hub_id']}")
    assert stored["related"] == [first["hub_id"]]
    await nodes.post("al-cert", disinfo_alert("al-1", revision=2, urls=["https://b.example/y"]))
    _, stored = await nodes.get("me-cert", f"/v1/alerts/{other['hub_id']}")
    assert stored["related"] == []


async def test_many_indicators_link_and_unlink(nodes: Api) -> None:
    """An alert with a thousand indicators (the schema's most) is stored, related through its
    last one, and unlinked by an update: the link index is written and cleared in chunks."""
    many = [{"type": "domain", "value": f"d{i}.example"} for i in range(1000)]
    _, big = await nodes.post("al-cert", threat_alert("al-big", indicators=many))
    status, small = await nodes.post(
        "rs-cert",
        threat_alert("rs-small", indicators=[{"type": "domain", "value": "d999.example"}]),
    )
    assert status == 201 and small["status"] == "created"
    _, stored = await nodes.get("me-cert", f"/v1/alerts/{small['hub_id']}")
    assert stored["related"] == [big["hub_id"]]
    _, stored = await nodes.get("me-cert", f"/v1/alerts/{big['hub_id']}")
    assert stored["related"] == [small["hub_id"]]
    other = [{"type": "domain", "value": "elsewhere.example"}]
    status, _ = await nodes.post("al-cert", threat_alert("al-big", revision=2, indicators=other))
    assert status == 200
    _, stored = await nodes.get("me-cert", f"/v1/alerts/{small['hub_id']}")
    assert stored["related"] == []

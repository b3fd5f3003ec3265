"""Similar claims and stories over HTTP (docs/claims.md): `similar` and `story_id` in
GET /v1/alerts/{hub_id} and in events, and their filtering by the sharing policy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, disinfo_alert, threat_alert

CLAIM = "KFOR gomila trupe i oklopna vozila kod Zvečana, spremaju napad na Srbe na severu"
CYRILLIC_COPY = "ХИТНО: КФОР гомила трупе и оклопна возила код Звечана, спремају напад на Србе 🚨"
ALBANIAN = "KFOR-i po grumbullon trupa pranë Zveçanit më 15 janar, 500 euro për çdo ushtar"
SERBIAN_NUMBERS = "KFOR gomila trupe kod Zvečana 15. januara, 500 evra za svakog vojnika"
OTHER_CLAIM = "Kosovska policija uhapsila 12 Srba u Zvečanu bez ikakvog naloga"


def claim_alert(alert_id: str, text: str, language: str = "sr-Latn", **changes: Any) -> dict:
    """A disinformation alert carrying one claim, with a URL of its own (its own cluster)."""
    return disinfo_alert(
        alert_id,
        claim=text,
        language=language,
        urls=[f"https://portal.example/{alert_id}"],
        **changes,
    )


@pytest.fixture
async def nodes(api: Api) -> Api:
    await api.add_node("rs-cert", "RS")
    await api.add_node("al-cert", "AL")
    await api.add_node("me-cert", "ME")
    await api.add_node("fc-ba", "BA", "civil-society", roles=("publish", "subscribe"))
    return api


async def post(api: Api, node: str, body: dict) -> str:
    status, answer = await api.post(node, body)
    assert status == 201, answer
    return str(answer["hub_id"])


async def read(api: Api, node: str, hub_id: str) -> dict:
    status, body = await api.get(node, f"/v1/alerts/{hub_id}")
    assert status == 200, body
    return body


async def test_an_edited_copy_in_the_other_script_is_similar_and_in_the_same_story(
    nodes: Api,
) -> None:
    """A copy re-posted in Cyrillic with a prefix and an emoji, and another URL, is a cluster of
    its own but names the original in `similar` (via claim), the original names it back, and
    both share one story."""
    first = await post(nodes, "rs-cert", claim_alert("orig", CLAIM))
    copy = await post(nodes, "al-cert", claim_alert("copy", CYRILLIC_COPY, "sr-Cyrl"))
    a, b = await read(nodes, "me-cert", first), await read(nodes, "me-cert", copy)
    assert a["cluster_id"] != b["cluster_id"]
    assert [s["hub_id"] for s in b["similar"]] == [first]
    assert b["similar"][0]["via"] == "claim" and 0.5 <= b["similar"][0]["score"] <= 1
    assert [s["hub_id"] for s in a["similar"]] == [copy]
    assert a["story_id"] == b["story_id"] and a["story_id"].startswith("st_")


async def test_a_telling_in_another_language_links_through_shared_entities(nodes: Api) -> None:
    """An Albanian telling with the same place, date and amount links via entities, naming
    what the two share, so that a reader sees why they were tied."""
    serbian = await post(nodes, "rs-cert", claim_alert("sr", SERBIAN_NUMBERS))
    albanian = await post(nodes, "al-cert", claim_alert("sq", ALBANIAN, "sq"))
    body = await read(nodes, "me-cert", albanian)
    (link,) = body["similar"]
    assert link["hub_id"] == serbian and link["via"] == "entities"
    assert {"Zvečan (XK)", "15 January", "500", "KFOR"} <= set(link["shared"])
    assert body["story_id"] == (await read(nodes, "me-cert", serbian))["story_id"]


async def test_different_claims_about_one_place_are_not_linked(nodes: Api) -> None:
    """Two claims about Zvečan that say different things are not similar and have their own
    stories."""
    a = await post(nodes, "rs-cert", claim_alert("one", CLAIM))
    b = await post(nodes, "al-cert", claim_alert("two", OTHER_CLAIM))
    x, y = await read(nodes, "me-cert", a), await read(nodes, "me-cert", b)
    assert x["similar"] == [] and y["similar"] == []
    assert x["story_id"] != y["story_id"]


async def test_a_report_the_reader_may_not_see_is_never_named_nor_names_the_story(
    nodes: Api,
) -> None:
    """A RED report of the claim, earlier than the reader's visible copies, appears in no
    `similar` list of a reader outside its recipients and does not name their story; its
    recipient sees the link and the story named after the RED report."""
    hidden = await post(
        nodes, "al-cert", claim_alert("red", CLAIM, tlp="RED", share={"recipients": ["me-cert"]})
    )
    visible = await post(nodes, "rs-cert", claim_alert("green", CYRILLIC_COPY, "sr-Cyrl"))
    later = await post(nodes, "fc-ba", claim_alert("later", "HITNO: " + CLAIM + " #istina"))
    outsider = await read(nodes, "rs-cert", later)
    assert [s["hub_id"] for s in outsider["similar"]] == [visible]
    assert hidden not in str(outsider)
    assert outsider["story_id"] == (await read(nodes, "rs-cert", visible))["story_id"]
    recipient = await read(nodes, "me-cert", later)
    assert {s["hub_id"] for s in recipient["similar"]} == {hidden, visible}
    assert recipient["story_id"] == (await read(nodes, "me-cert", hidden))["story_id"]
    assert recipient["story_id"] != outsider["story_id"]


async def test_an_alert_without_claims_has_no_story(nodes: Api) -> None:
    """A threat alert carries `story_id` null and an empty `similar` list."""
    hub_id = await post(nodes, "rs-cert", threat_alert())
    body = await read(nodes, "rs-cert", hub_id)
    assert body["story_id"] is None and body["similar"] == []


async def test_an_update_to_other_claims_leaves_the_story(nodes: Api) -> None:
    """A report updated to a different claim is no longer similar to its former copies."""
    a = await post(nodes, "rs-cert", claim_alert("first", CLAIM))
    b = await post(nodes, "al-cert", claim_alert("second", CYRILLIC_COPY, "sr-Cyrl"))
    assert [s["hub_id"] for s in (await read(nodes, "me-cert", a))["similar"]] == [b]
    status, _ = await nodes.post("al-cert", claim_alert("second", OTHER_CLAIM, revision=2))
    assert status == 200
    assert (await read(nodes, "me-cert", a))["similar"] == []


async def test_events_carry_the_story_and_similar_reports_the_reader_may_see(nodes: Api) -> None:
    """A subscriber's feed gives each alert its `story_id` and `similar`, filtered for it."""
    sub = (await nodes.subscribe("rs-cert"))["id"]
    hidden = await post(
        nodes, "al-cert", claim_alert("red", CLAIM, tlp="RED", share={"recipients": ["me-cert"]})
    )
    first = await post(nodes, "me-cert", claim_alert("g1", CYRILLIC_COPY, "sr-Cyrl"))
    second = await post(nodes, "fc-ba", claim_alert("g2", "HITNO: " + CLAIM))
    events = await nodes.wait_for_feed("rs-cert", sub, 2, last=second)
    alerts = {e["hub_id"]: e["alert"] for e in events}
    assert [s["hub_id"] for s in alerts[second]["similar"]] == [first]
    assert alerts[first]["story_id"] == alerts[second]["story_id"]
    assert hidden not in str(events)


async def test_the_triage_queue_names_each_clusters_story_and_lists_one_story(nodes: Api) -> None:
    """Asked with include=story_id, each cluster in GET /v1/clusters (and always in
    /v1/clusters/{id}) carries the story of its earliest report the caller may see, so a desk
    can group its queue by story; `story_id=` lists one story's clusters (in either sort)."""
    first = await post(nodes, "rs-cert", claim_alert("orig", CLAIM))
    copy = await post(nodes, "al-cert", claim_alert("copy", CYRILLIC_COPY, "sr-Cyrl"))
    other = await post(nodes, "rs-cert", claim_alert("other", OTHER_CLAIM))
    story = (await read(nodes, "me-cert", first))["story_id"]
    clusters = {(await read(nodes, "me-cert", h))["cluster_id"]: h for h in (first, copy, other)}
    status, page = await nodes.get("me-cert", "/v1/clusters")
    assert status == 200 and all("story_id" not in c for c in page["clusters"]), page
    status, page = await nodes.get("me-cert", "/v1/clusters?include=story_id")
    assert status == 200, page
    stories = {c["cluster_id"]: c["story_id"] for c in page["clusters"]}
    assert set(stories) == set(clusters)
    by_report = {clusters[c]: s for c, s in stories.items()}
    assert by_report[first] == by_report[copy] == story
    assert by_report[other] not in (None, story)
    for sort in ("last_seen", "spread"):
        status, page = await nodes.get("me-cert", f"/v1/clusters?sort={sort}&story_id={story}")
        assert status == 200, page
        assert {clusters[c["cluster_id"]] for c in page["clusters"]} == {first, copy}
    cluster_of_copy = next(c for c, h in clusters.items() if h == copy)
    status, detail = await nodes.get("me-cert", f"/v1/clusters/{cluster_of_copy}")
    assert status == 200 and detail["story_id"] == story
    status, answer = await nodes.get("me-cert", "/v1/clusters?story_id=st_nope")
    assert status == 422 and answer["details"][0]["pointer"] == "/story_id"


async def test_a_hidden_first_report_does_not_name_a_clusters_story(nodes: Api) -> None:
    """The queue's story of a cluster is named after the first report the caller may see: a
    RED original shared with me-cert only does not name the story al-cert's queue shows."""
    hidden = await post(
        nodes, "rs-cert", claim_alert("red", CLAIM, tlp="RED", share={"recipients": ["me-cert"]})
    )
    copy = await post(nodes, "al-cert", claim_alert("copy", CYRILLIC_COPY, "sr-Cyrl"))
    seen_by_al = (await read(nodes, "al-cert", copy))["story_id"]
    seen_by_me = (await read(nodes, "me-cert", copy))["story_id"]
    assert seen_by_me == (await read(nodes, "me-cert", hidden))["story_id"] != seen_by_al
    status, page = await nodes.get("al-cert", "/v1/clusters?include=story_id&sort=spread")
    assert status == 200
    assert [c["story_id"] for c in page["clusters"]] == [seen_by_al]
    status, page = await nodes.get("al-cert", f"/v1/clusters?story_id={seen_by_me}")
    assert status == 200 and page["clusters"] == []

"""The triage queue (GET /v1/clusters, GET /v1/clusters/{id}): its exact contents, order,
filters and pages for a scripted scenario, as each kind of caller sees it. Every figure is
computed from the reports the caller may see; a RED report moves a cluster to the top only for
those it was shared with."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, disinfo_alert
from tests.factcheck.helpers import fact_check_body, post_fact_check

pytestmark = pytest.mark.timeout(60)

CALLERS = ("rs-cert", "al-cert", "mk-cert", "fc-ba", "fc-rs", "operator")
CLAIM_CYRL, CLAIM_LATN = "ЕУ укида безвизни режим", "EU ukida bezvizni režim"


async def scenario(api: Api) -> dict[str, str]:
    """Four clusters, posted in this order: C1 by rs-cert (sr-Cyrl) and al-cert (sr-Latn), C2 by
    mk-cert (mk, fact-checked by fc-ba), C3 AMBER by me-cert, C5 by rs-cert withheld from AL,
    then a RED report of C1 by me-cert (sq) to mk-cert and fc-rs, fact-checked by fc-rs.
    Returns each cluster's id by name."""
    for node, country in (("rs-cert", "RS"), ("al-cert", "AL"), ("mk-cert", "MK"),
                          ("me-cert", "ME")):  # fmt: skip
        await api.add_node(node, country)
    for node, country in (("fc-ba", "BA"), ("fc-rs", "RS")):
        await api.add_node(node, country, kind="civil-society", roles=("subscribe", "fact-check"))
    ids: dict[str, str] = {}

    async def post(node: str, name: str, body: dict[str, Any]) -> str:
        status, answer = await api.post(node, body)
        assert status == 201, answer
        ids.setdefault(name, answer["cluster_id"])
        assert ids[name] == answer["cluster_id"]
        return answer["hub_id"]

    alert = disinfo_alert
    await post("rs-cert", "C1", alert("c1-rs", claim=CLAIM_CYRL, target_countries=["RS"]))
    latin = alert("c1-al", claim=CLAIM_LATN, language="sr-Latn", target_countries=["AL"])
    await post("al-cert", "C1", latin)
    c2 = await post(
        "mk-cert", "C2", alert("c2", claim="Вакцините содржат чипови", language="mk",
                               target_countries=["MK"])
    )  # fmt: skip
    await post(
        "me-cert", "C3", alert("c3", claim="Izbori su pokradeni", tlp="AMBER", language="sr-Latn",
                               target_countries=["ME"])
    )  # fmt: skip
    await post(
        "rs-cert", "C5", alert("c5", claim="Power cuts are sabotage", language="en",
                               share={"withhold_from": ["AL"]})
    )  # fmt: skip
    red = await post(
        "me-cert", "C1", alert("c1-red", claim=CLAIM_CYRL, language="sq", tlp="RED",
                               target_countries=["RS"], share={"recipients": ["mk-cert", "fc-rs"]})
    )  # fmt: skip
    assert (await post_fact_check(api, "fc-ba", c2, fact_check_body("fc-c2")))[0] == 201
    assert (await post_fact_check(api, "fc-rs", red, fact_check_body("fc-c1")))[0] == 201
    return ids


async def pages(api: Api, node: str, query: str) -> list[dict[str, Any]]:
    """Every cluster of the listing, one page of one cluster at a time."""
    found: list[dict[str, Any]] = []
    path = f"/v1/clusters?limit=1&{query}"
    while True:
        status, page = await api.get(node, path)
        assert status == 200, page
        found += page["clusters"]
        if page["next"] is None:
            return found
        path = f"/v1/clusters?limit=1&{query}&after={page['next']}"


def names(ids: dict[str, str], clusters: list[dict[str, Any]]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[c["cluster_id"]] for c in clusters]


# What each caller may see: AMBER C3 reaches the governments; C5 is withheld from AL; the RED
# report of C1 reaches mk-cert and fc-rs (and its sender, me-cert, which is not probed here).
LAST_SEEN = {
    "rs-cert": ["C5", "C3", "C2", "C1"],
    "al-cert": ["C3", "C2", "C1"],
    "mk-cert": ["C1", "C5", "C3", "C2"],
    "fc-ba": ["C5", "C2", "C1"],
    "fc-rs": ["C1", "C5", "C2"],
    "operator": ["C5", "C2", "C1"],
}
# Sender countries, languages, reports; then the newest first.
SPREAD = {
    "rs-cert": ["C1", "C5", "C3", "C2"],
    "al-cert": ["C1", "C3", "C2"],
    "mk-cert": ["C1", "C5", "C3", "C2"],
    "fc-ba": ["C1", "C5", "C2"],
    "fc-rs": ["C1", "C5", "C2"],
    "operator": ["C1", "C5", "C2"],
}
SEES_RED = {"mk-cert", "fc-rs"}


async def test_each_caller_gets_its_own_queue_in_order_and_in_pages(api: Api) -> None:
    """For every kind of caller, by last_seen and by spread, whole or a cluster per page, the
    queue holds exactly the clusters it may see, in the order its visible reports give."""
    ids = await scenario(api)
    for node in CALLERS:
        for sort, expected in (("last_seen", LAST_SEEN), ("spread", SPREAD)):
            status, whole = await api.get(node, f"/v1/clusters?sort={sort}")
            assert status == 200
            assert names(ids, whole["clusters"]) == expected[node], (node, sort)
            assert whole["next"] is None
            assert names(ids, await pages(api, node, f"sort={sort}")) == expected[node]


async def test_figures_count_only_the_reports_the_caller_may_see(api: Api) -> None:
    """C1's languages, countries, counts, last_seen and fact-checks differ between a caller
    that may see its RED report and one that may not, and match what each may see."""
    ids = await scenario(api)
    for node in CALLERS:
        _, whole = await api.get(node, "/v1/clusters")
        (c1,) = [c for c in whole["clusters"] if c["cluster_id"] == ids["C1"]]
        if node in SEES_RED:
            assert c1["sender_countries"] == ["AL", "ME", "RS"]
            assert c1["languages"] == ["sq", "sr-Cyrl", "sr-Latn"]
            assert c1["spread"] == {"countries": 3, "languages": 3, "reports": 3}
            assert c1["report_count"] == 3 and c1["node_count"] == 3
            assert c1["fact_checked"] is True and len(c1["fact_checks"]) == 1
        else:
            assert c1["sender_countries"] == ["AL", "RS"], node
            assert c1["languages"] == ["sr-Cyrl", "sr-Latn"]
            assert c1["spread"] == {"countries": 2, "languages": 2, "reports": 2}
            assert c1["fact_checked"] is False and c1["fact_checks"] == []
            assert "fc-c1" not in str(whole) and "c1-red" not in str(whole)
        assert c1["target_countries"] == ["AL", "RS"]
        assert c1["first_seen"] < c1["last_seen"]
        assert c1["kind"] == "disinformation" and c1["claims"][0]["text"] == CLAIM_CYRL


async def test_filters(api: Api) -> None:
    """kind, target_country, language (with its subtags), fact_checked and since each narrow the
    queue by what the caller may see."""
    ids = await scenario(api)
    cases = [
        ("fc-ba", "fact_checked=false", ["C5", "C1"]),
        ("fc-rs", "fact_checked=false", ["C5"]),
        ("fc-rs", "fact_checked=true", ["C1", "C2"]),
        ("rs-cert", "language=sr", ["C3", "C1"]),
        ("rs-cert", "language=sr-Latn", ["C3", "C1"]),
        ("rs-cert", "language=sq", []),
        ("mk-cert", "language=sq", ["C1"]),
        ("al-cert", "target_country=MK", ["C2"]),
        ("al-cert", "kind=threat", []),
        ("al-cert", "kind=disinformation&sort=spread", ["C1", "C3", "C2"]),
        ("fc-ba", "since=2000-01-01T00:00:00Z", ["C5", "C2", "C1"]),
        ("fc-ba", "since=2999-01-01T00:00:00Z", []),
    ]
    for node, query, expected in cases:
        status, page = await api.get(node, f"/v1/clusters?{query}")
        assert status == 200, page
        assert names(ids, page["clusters"]) == expected, (node, query)
        assert names(ids, await pages(api, node, query)) == expected, (node, query)


async def test_a_cluster_the_caller_may_not_see_is_an_unknown_id(api: Api) -> None:
    """GET /v1/clusters/{id} shows the caller's reports only; a cluster none of whose reports
    it may see is 404 exactly as an id that never existed; a malformed id is 404 too."""
    ids = await scenario(api)
    status, c1 = await api.get("rs-cert", f"/v1/clusters/{ids['C1']}")
    assert status == 200
    assert [r["node"] for r in c1["reports"]] == ["rs-cert", "al-cert"]
    assert c1["reports"][0]["tlp"] == "GREEN" and c1["reports"][0]["status"] == "active"
    status, c1 = await api.get("mk-cert", f"/v1/clusters/{ids['C1']}")
    assert [r["node"] for r in c1["reports"]] == ["rs-cert", "al-cert", "me-cert"]
    unknown = "cl_" + "0" * 24
    for node, hidden in (("al-cert", "C5"), ("fc-ba", "C3"), ("operator", "C3")):
        status, answer = await api.get(node, f"/v1/clusters/{ids[hidden]}")
        status_unknown, answer_unknown = await api.get(node, f"/v1/clusters/{unknown}")
        assert status == status_unknown == 404
        assert answer["message"].replace(ids[hidden], "<id>") == answer_unknown["message"].replace(
            unknown, "<id>"
        )
    status, answer = await api.get("rs-cert", "/v1/clusters/not-a-cluster")
    assert status == 404 and answer["error"] == "not_found"


async def test_a_cluster_of_retracted_reports_leaves_the_queue(api: Api) -> None:
    """A cluster whose every visible report is retracted is no longer in the queue, and its
    page still shows the reports, marked retracted."""
    await api.add_node("rs-cert", "RS")
    _, posted = await api.post("rs-cert", disinfo_alert("gone"))
    resp = await api.client.post(
        f"/v1/alerts/{posted['hub_id']}/retract", headers=api.auth("rs-cert")
    )
    assert resp.status == 200
    status, page = await api.get("rs-cert", "/v1/clusters")
    assert status == 200 and page["clusters"] == []
    status, cluster = await api.get("rs-cert", f"/v1/clusters/{posted['cluster_id']}")
    assert status == 200 and cluster["report_count"] == 0
    assert [r["status"] for r in cluster["reports"]] == ["retracted"]


async def test_bad_queries_are_422_naming_each(api: Api) -> None:
    """Every bad parameter is named, a cursor of one sort is refused by the other, and no bad
    query is a 5xx."""
    await scenario(api)
    status, body = await api.get(
        "fc-ba", "/v1/clusters?sort=popular&fact_checked=maybe&language=!!&limit=0&kind=rumour"
    )
    assert status == 422
    assert {d["pointer"] for d in body["details"]} == {
        "/sort", "/fact_checked", "/language", "/limit", "/kind"
    }  # fmt: skip
    status, page = await api.get("fc-ba", "/v1/clusters?limit=1")
    status, body = await api.get("fc-ba", f"/v1/clusters?sort=spread&after={page['next']}")
    assert status == 422 and body["details"][0]["pointer"] == "/after"
    status, body = await api.get("fc-ba", "/v1/clusters?after=forged")
    assert status == 422

"""TAXII 2.1 read-only: the OASIS taxii2-client walks a real hub process with Basic auth; an
OpenCTI-like poller gets every object version exactly once; the sharing policy holds on every
TAXII read; negotiation, errors, paging and match filters behave as the spec says."""

from __future__ import annotations

import base64
import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from hub.interop.taxii import TAXII_MEDIA
from tests.conftest import OPERATOR_TOKEN, Api, disinfo_alert, threat_alert, unique_threat
from tests.hubproc import HubProcess

ROOT = "/taxii2/alerthub"
VISIBLE = f"{ROOT}/collections/visible"
# Objects a version of an alert carries itself; senders' identities and TLP markings are shared
# by many alerts and travel with each page that uses them.
OWN_TYPES = {"report", "indicator", "attack-pattern", "note", "vulnerability"}


def taxii_headers(api: Api, node: str) -> dict[str, str]:
    return {**api.auth(node), "Accept": TAXII_MEDIA}


async def taxii_get(api: Api, node: str, path: str) -> tuple[int, dict[str, Any], Any]:
    resp = await api.client.get(path, headers=taxii_headers(api, node))
    return resp.status, await resp.json(content_type=None), resp.headers


async def all_objects(api: Api, node: str, collection: str = VISIBLE, limit: int = 3) -> list:
    """Every object of a collection, page by page with `next`."""
    found: list[dict[str, Any]] = []
    path = f"{collection}/objects/?limit={limit}"
    while True:
        status, body, _ = await taxii_get(api, node, path)
        assert status == 200, body
        found += body.get("objects", [])
        if not body["more"]:
            assert "next" not in body
            return found
        path = f"{collection}/objects/?limit={limit}&next={body['next']}"


async def setup_nodes(api: Api) -> None:
    await api.add_node("al-cert", country="AL")
    await api.add_node("rs-cert", country="RS")
    await api.add_node("factcheck-ba", country="BA", kind="civil-society")


async def test_discovery_api_root_and_collections(api: Api) -> None:
    """Discovery names the API root; the root says TAXII 2.1; collections list `visible`."""
    await setup_nodes(api)
    status, body, headers = await taxii_get(api, "al-cert", "/taxii2/")
    assert status == 200 and headers["Content-Type"] == TAXII_MEDIA
    assert body["api_roots"][0].endswith(f"{ROOT}/")
    status, body, _ = await taxii_get(api, "al-cert", f"{ROOT}/")
    assert body["versions"] == [TAXII_MEDIA] and body["max_content_length"] > 0
    status, body, _ = await taxii_get(api, "al-cert", f"{ROOT}/collections/")
    assert [c["id"] for c in body["collections"]] == ["visible"]
    # OpenCTI's TAXII2 connector finds a collection by its title (alerthub.visible).
    assert body["collections"][0]["title"] == "visible"
    assert body["collections"][0]["can_read"] and not body["collections"][0]["can_write"]


async def test_an_accept_taxii_cannot_serve_is_406_with_a_taxii_error(api: Api) -> None:
    """Accept: text/html is 406; TAXII 2.0 too; errors are TAXII error messages."""
    await setup_nodes(api)
    for accept in ("text/html", "application/taxii+json;version=2.0", "application/json"):
        headers = {**api.auth("al-cert"), "Accept": accept}
        resp = await api.client.get(f"{ROOT}/collections/", headers=headers)
        assert resp.status == 406
        assert resp.headers["Content-Type"] == TAXII_MEDIA
        body = await resp.json(content_type=None)
        assert body["http_status"] == "406" and body["title"]
    for accept in ("*/*", "application/taxii+json", f"text/html;q=0.5, {TAXII_MEDIA}"):
        resp = await api.client.get("/taxii2/", headers={**api.auth("al-cert"), "Accept": accept})
        assert resp.status == 200


async def test_basic_auth_takes_the_node_id_and_the_token(api: Api) -> None:
    """Basic with user = node id and password = token works; another user or no auth is 401."""
    await setup_nodes(api)

    def basic(user: str, password: str) -> dict[str, str]:
        raw = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {raw}", "Accept": TAXII_MEDIA}

    resp = await api.client.get("/taxii2/", headers=basic("al-cert", api.tokens["al-cert"]))
    assert resp.status == 200
    for headers in (
        basic("rs-cert", api.tokens["al-cert"]),
        basic("al-cert", "not-a-token"),
        {"Authorization": "Basic !!!", "Accept": TAXII_MEDIA},
        {"Accept": TAXII_MEDIA},
    ):
        resp = await api.client.get("/taxii2/", headers=headers)
        assert resp.status == 401
        assert "Basic" in resp.headers["WWW-Authenticate"]
        assert (await resp.json(content_type=None))["http_status"] == "401"
    # Basic is for the TAXII routes only: the hub's own API stays Bearer.
    resp = await api.client.get("/v1/alerts", headers=basic("al-cert", api.tokens["al-cert"]))
    assert resp.status == 401


async def test_bad_query_parameters_are_400_taxii_errors(api: Api) -> None:
    """Bad limit, added_after, next, match values and unknown parameters: 400 with pointers."""
    await setup_nodes(api)
    for query in (
        "limit=0",
        "limit=abc",
        "added_after=yesterday",
        "next=forged",
        "match[type]=Bad Type",
        "match[id]=indicator--nope",
        "match[version]=sometime",
        "colour=red",
        "limit=1&limit=2",
    ):
        status, body, _ = await taxii_get(api, "al-cert", f"{VISIBLE}/objects/?{query}")
        assert status == 400, (query, body)
        assert body["details"]["problems"][0]["pointer"].startswith("/")


async def test_policy_holds_red_amber_and_withheld_alerts_never_appear(api: Api) -> None:
    """A civil-society node sees no AMBER, and nobody a RED not named for it or a withheld
    alert, in objects, manifests, single-object reads or counts."""
    await setup_nodes(api)
    assert (await api.post("al-cert", unique_threat("green-1")))[0] == 201
    amber = unique_threat("amber-1", tlp="AMBER")
    red = unique_threat("red-1", tlp="RED", share={"recipients": ["rs-cert"]})
    withheld = unique_threat("wh-1", share={"withhold_from": ["BA"]})
    hidden = {}
    for alert in (amber, red, withheld):
        status, body = await api.post("al-cert", alert)
        assert status == 201
        hidden[alert["id"]] = body["hub_id"]

    seen = await all_objects(api, "factcheck-ba", limit=1000)
    reports = [o for o in seen if o["type"] == "report"]
    assert [r["name"] for r in reports] == [unique_threat("green-1")["title"]]
    names = {r["external_references"][0]["external_id"] for r in reports}
    assert not names & set(hidden.values())
    status, manifest, _ = await taxii_get(api, "factcheck-ba", f"{VISIBLE}/manifest/")
    assert {m["id"] for m in manifest["objects"]} == {o["id"] for o in seen}

    # The government node named in the RED alert sees it and the AMBER one.
    rs_reports = [o for o in await all_objects(api, "rs-cert") if o["type"] == "report"]
    assert len(rs_reports) == 4
    al_cert_reports = {o["id"] for o in rs_reports}
    # A hidden alert's report id is 404, exactly as an id that never existed.
    for report_id in al_cert_reports - {r["id"] for r in reports}:
        status, body, _ = await taxii_get(api, "factcheck-ba", f"{VISIBLE}/objects/{report_id}/")
        assert status == 404 and body["http_status"] == "404"
        status, _, _ = await taxii_get(
            api, "factcheck-ba", f"{VISIBLE}/objects/{report_id}/versions/"
        )
        assert status == 404


async def test_subscription_collections_are_their_owners_only(api: Api) -> None:
    """A pull subscription is a collection of its owner, filter applied; others get 404."""
    await setup_nodes(api)
    sub = await api.subscribe("rs-cert", kinds=["disinformation"])
    await api.subscribe("rs-cert", delivery={"type": "pull"}, kinds=["threat"])
    assert (await api.post("al-cert", threat_alert("t-1")))[0] == 201
    status, body = await api.post("al-cert", disinfo_alert("d-1"))
    await api.wait_for_feed("rs-cert", sub["id"], 1, last=body["hub_id"])
    status, found, _ = await taxii_get(api, "rs-cert", f"{ROOT}/collections/")
    assert {c["id"] for c in found["collections"]} >= {"visible", sub["id"]}
    path = f"{ROOT}/collections/{sub['id']}"
    objects = await all_objects(api, "rs-cert", path)
    kinds = {label for o in objects if o["type"] == "report" for label in o["labels"]}
    assert "kind:disinformation" in kinds and "kind:threat" not in kinds
    for node in ("al-cert", "operator"):
        for suffix in ("/", "/objects/", "/manifest/"):
            status, body, _ = await taxii_get(api, node, path + suffix)
            assert status == 404, (node, suffix)
            assert body["http_status"] == "404"


async def test_added_after_and_date_added_last_give_nothing_twice(api: Api) -> None:
    """Re-sending the last page's X-TAXII-Date-Added-Last as added_after resumes exactly; an
    empty page still has both headers, and its Last keeps the client where it was."""
    await setup_nodes(api)
    for n in range(5):
        assert (await api.post("al-cert", unique_threat(f"a-{n}")))[0] == 201
    got: list[str] = []
    added_after = None
    for _ in range(10):
        query = "limit=4" + (f"&added_after={added_after}" if added_after else "")
        status, body, headers = await taxii_get(api, "rs-cert", f"{VISIBLE}/objects/?{query}")
        assert status == 200
        assert headers["X-TAXII-Date-Added-First"] <= headers["X-TAXII-Date-Added-Last"]
        got += [o["id"] for o in body.get("objects", [])]
        if not body.get("objects"):
            assert headers["X-TAXII-Date-Added-Last"] == added_after
            break
        added_after = headers["X-TAXII-Date-Added-Last"]
    own = [i for i in got if i.split("--")[0] in OWN_TYPES]
    assert len(own) == len(set(own)) and sum(i.startswith("report--") for i in own) == 5


async def test_match_filters_select_objects(api: Api) -> None:
    """match[type], match[id] and match[version] narrow what is returned."""
    await setup_nodes(api)
    assert (await api.post("al-cert", threat_alert("t-1")))[0] == 201
    status, body, _ = await taxii_get(api, "rs-cert", f"{VISIBLE}/objects/?match[type]=indicator")
    assert {o["type"] for o in body["objects"]} == {"indicator"} and len(body["objects"]) == 3
    report = (await taxii_get(api, "rs-cert", f"{VISIBLE}/objects/?match[type]=report"))[1][
        "objects"
    ][0]
    status, body, _ = await taxii_get(
        api, "rs-cert", f"{VISIBLE}/objects/?match[id]={report['id']}"
    )
    assert [o["id"] for o in body["objects"]] == [report["id"]]
    for version, count in ((report["modified"], 1), ("2001-01-01T00:00:00Z", 0), ("all", 1)):
        path = f"{VISIBLE}/objects/{report['id']}/?match[version]={version}"
        status, body, _ = await taxii_get(api, "rs-cert", path)
        assert status == 200 and len(body.get("objects", [])) == count
    status, body, _ = await taxii_get(api, "rs-cert", f"{VISIBLE}/objects/{report['id']}/versions/")
    assert body["versions"] == [report["modified"]]


# -- a real hub process, read by the OASIS client


@pytest.fixture
def hub_process(redis_url: str, tmp_path: Path) -> Iterator[HubProcess]:
    env = {
        "ALERTHUB_REDIS_URL": redis_url,
        "ALERTHUB_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
        "ALERTHUB_RATE_LIMIT_PER_MINUTE": "1000000",
        "ALERTHUB_LOG_LEVEL": "warning",
    }
    proc = HubProcess(env=env, cwd=tmp_path).start()
    yield proc
    proc.stop()


class Http:
    """The hub's own API over real HTTP, for setting up what TAXII then reads."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.tokens = {"operator": OPERATOR_TOKEN}
        self.session = requests.Session()

    def call(self, method: str, path: str, node: str, body: Any = None) -> dict[str, Any]:
        resp = self.session.request(
            method,
            self.base + path,
            json=body,
            headers={"Authorization": f"Bearer {self.tokens[node]}"},
            timeout=30,
        )
        assert resp.status_code < 300, resp.text
        return resp.json()

    def add_node(self, node_id: str, country: str, kind: str = "government") -> None:
        body = {"id": node_id, "name": f"Node {node_id}", "country": country, "kind": kind}
        body["roles"] = ["publish", "subscribe"]
        self.tokens[node_id] = self.call("POST", "/v1/nodes", "operator", body)["token"]


def test_taxii2_client_walks_discovery_roots_collections_and_every_page(
    hub_process: HubProcess,
) -> None:
    """The OASIS client, unmodified, with Basic auth: discovery → API root → collections →
    every page of objects and of the manifest; the policy holds on what it gets."""
    http = Http(hub_process.base_url)
    http.add_node("al-cert", "AL")
    http.add_node("factcheck-ba", "BA", kind="civil-society")
    for n in range(7):
        http.call("POST", "/v1/alerts", "al-cert", unique_threat(f"g-{n}"))
    http.call("POST", "/v1/alerts", "al-cert", unique_threat("amber", tlp="AMBER"))
    server = Server(
        f"{hub_process.base_url}/taxii2/",
        user="factcheck-ba",
        password=http.tokens["factcheck-ba"],
    )
    assert server.title == "alerthub"
    (root,) = server.api_roots
    assert isinstance(root, ApiRoot) and root.versions == [TAXII_MEDIA]
    (visible,) = [c for c in root.collections if c.id == "visible"]
    assert isinstance(visible, Collection) and visible.can_read and not visible.can_write
    objects = [
        o for page in as_pages(visible.get_objects, per_request=5) for o in page.get("objects", [])
    ]
    reports = [o for o in objects if o["type"] == "report"]
    assert len(reports) == 7  # not the AMBER one
    manifest = [
        m for page in as_pages(visible.get_manifest, per_request=5) for m in page.get("objects", [])
    ]
    assert {m["id"] for m in manifest} == {o["id"] for o in objects}
    one = visible.get_object(reports[0]["id"])
    assert one["objects"][0]["id"] == reports[0]["id"]


def test_an_opencti_like_poller_gets_every_object_version_exactly_once(
    hub_process: HubProcess,
) -> None:
    """Polled three times with added_after = the last Date-Added-Last, following `next`, while
    new alerts, updates and retractions arrive: every (object, version) exactly once, and the
    last state of each report is the hub's."""
    http = Http(hub_process.base_url)
    http.add_node("al-cert", "AL")
    http.add_node("rs-cert", "RS")
    session = requests.Session()
    token = http.tokens["rs-cert"]
    base = f"{hub_process.base_url}{VISIBLE}/objects/"
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    latest: dict[str, dict[str, Any]] = {}
    state = {"added_after": None}

    def poll() -> None:
        """What OpenCTI's TAXII feed does: page with `next`, then remember Date-Added-Last."""
        params: dict[str, str] = {"limit": "7"}
        if state["added_after"]:
            params["added_after"] = state["added_after"]
        while True:
            resp = session.get(
                base, params=params, auth=("rs-cert", token), headers={"Accept": TAXII_MEDIA}
            )
            assert resp.status_code == 200, resp.text
            body = json.loads(resp.text)
            for obj in body.get("objects", []):
                if obj["type"] in OWN_TYPES:
                    seen[obj["id"], obj["modified"]] += 1
                    latest[obj["id"]] = obj
            state["added_after"] = resp.headers["X-TAXII-Date-Added-Last"]
            if not body["more"]:
                return
            params = {"limit": "7", "next": body["next"]}

    hub_ids = [
        http.call("POST", "/v1/alerts", "al-cert", unique_threat(f"p-{n}"))["hub_id"]
        for n in range(6)
    ]
    poll()
    for n in range(6, 9):
        http.call("POST", "/v1/alerts", "al-cert", unique_threat(f"p-{n}"))
    http.call("POST", "/v1/alerts", "al-cert", unique_threat("p-1", revision=2, title="Updated"))
    http.call("POST", f"/v1/alerts/{hub_ids[2]}/retract", "al-cert", {"reason": "mistake"})
    poll()
    http.call("POST", "/v1/alerts", "al-cert", unique_threat("p-9"))
    http.call("POST", f"/v1/alerts/{hub_ids[1]}/retract", "al-cert", {"reason": "wrong"})
    http.call("POST", "/v1/alerts", "al-cert", unique_threat("p-3", revision=2))
    poll()
    assert seen and max(seen.values()) == 1, [k for k, v in seen.items() if v > 1]
    reports = [o for o in latest.values() if o["type"] == "report"]
    assert len(reports) == 10
    (updated,) = [o for o in reports if o["name"] == "Updated"]
    assert updated.get("revoked") is True  # updated, then retracted
    assert sum(bool(o.get("revoked")) for o in reports) == 2
    # Versions per report: p-1 three (created, updated, retracted), p-2 two, p-3 two.
    versions = collections.Counter(oid for oid, _ in seen if oid.startswith("report--"))
    assert sorted(versions.values()) == [1] * 7 + [2, 2, 3]
    poll()  # nothing new: nothing again
    assert max(seen.values()) == 1


def fact_check_body(fc_id: str, claim: str) -> dict[str, Any]:
    return {"id": fc_id, "claim_reviewed": claim, "url": "https://factcheck.example/a",
            "rating": {"value": 1, "alternate_name": "False"}, "language": "sr",
            "published_at": "2026-11-21T09:30:00Z", "summary": "It is false."}  # fmt: skip


async def test_fact_checks_are_notes_for_those_who_may_see_their_alert(api: Api) -> None:
    """A fact-check is a note by its checker on the report, added when posted, to whoever may
    see the alert it is on; a retraction is a revoked version, after it in the collection."""
    await setup_nodes(api)
    await api.add_node("fc-me", "ME", kind="civil-society", roles=("subscribe", "fact-check"))
    _, green = await api.post("al-cert", unique_threat("g-1"))
    _, amber = await api.post(
        "al-cert", unique_threat("a-1", tlp="AMBER", share={"recipients": ["fc-me"]})
    )
    posted = {}
    for name, alert in (("green", green), ("amber", amber)):
        resp = await api.client.post(
            f"/v1/alerts/{alert['hub_id']}/fact-checks",
            json=fact_check_body(f"fc-{name}", f"Claim {name}"),
            headers=api.auth("fc-me"),
        )
        assert resp.status == 201, await resp.text()
        posted[name] = (await resp.json())["fact_check_id"]

    def notes(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        found = [o for o in objects if o["type"] == "note" and "fact-check" in o["labels"]]
        return {o["content"].split("\n")[0]: o for o in found}

    seen_rs = notes(await all_objects(api, "rs-cert"))
    assert set(seen_rs) == {"Claim green", "Claim amber"}  # a government node sees AMBER
    checker = next(o for o in await all_objects(api, "rs-cert") if o.get("name") == "Node fc-me")
    assert seen_rs["Claim green"]["created_by_ref"] == checker["id"]
    assert set(notes(await all_objects(api, "factcheck-ba"))) == {"Claim green"}

    _, _, headers = await taxii_get(api, "rs-cert", f"{VISIBLE}/objects/?limit=1000")
    last = headers["X-TAXII-Date-Added-Last"]
    resp = await api.client.post(
        f"/v1/alerts/{green['hub_id']}/fact-checks/{posted['green']}/retract",
        json={"reason": "wrong article"},
        headers=api.auth("fc-me"),
    )
    assert resp.status == 200, await resp.text()
    status, body, _ = await taxii_get(api, "rs-cert", f"{VISIBLE}/objects/?added_after={last}")
    assert status == 200
    (revoked,) = [o for o in body["objects"] if o["type"] == "note"]
    assert revoked["id"] == seen_rs["Claim green"]["id"] and revoked["revoked"] is True

"""No path shows an alert to a node its sender excluded: a RED alert to a named recipient, an
AMBER alert (governments only) and a GREEN alert withheld from Serbia, read by the nodes (and the
operator) each one excludes, through every GET route the app serves (generated from the route
table: a new GET route is probed too, or flagged when its path parameters are new), live SSE,
webhook pushes, listing filters and paging, TAXII collections, objects, manifests and their
pages, the retract route, and dedup answers.

Each excluded reader must find none of the alert's markers (hub id, cluster id, sender's alert
id, title) in any answer, and an excluded alert's id must be answered exactly as an id that
never existed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse

from hub.ids import new_ulid
from hub.interop.misp import ulid_to_uuid
from hub.interop.stix_parts import report_id
from tests.conftest import Api, unique_threat
from tests.delivery.test_webhooks import wait_status
from tests.receivers import Receiver
from tests.security.routes import path_params, served_routes
from tests.security.tally import refused

pytestmark = pytest.mark.timeout(60)

SENDER, RECIPIENT = "al-cert", "me-cert"
# Each withheld alert: its sharing, and who (besides nodes we do not probe) may not see it.
WITHHELD = {
    "red": ({"tlp": "RED", "share": {"recipients": [RECIPIENT]}}, {"rs-cert", "fc-ba", "operator"}),
    "amber": ({"tlp": "AMBER"}, {"fc-ba", "operator"}),
    "no-rs": ({"tlp": "GREEN", "share": {"withhold_from": ["RS"]}}, {"rs-cert"}),
}
READERS = ("rs-cert", "fc-ba", "operator")
TAXII_QUERIES = ["limit=1", "added_after=2000-01-01T00:00:00Z", "match[type]=report",
                 "match[type]=indicator&limit=1000", "match[version]=all"]  # fmt: skip
# Query strings tried on top of the bare path, per route: filters, paging, formats.
QUERIES = {
    "/v1/alerts": ["kind=threat", "target_country=AL", "target_country=ME", "limit=1",
                   "since=2000-01-01T00:00:00Z", "kind=threat&target_country=AL&limit=500"],
    "/v1/reports/sharing": ["format=csv", "since=2000-01-01T00:00:00Z"],
    "/v1/subscriptions/{subscription_id}/feed": ["limit=1000", "after=0-0"],
    "/v1/subscriptions/{subscription_id}/feed.atom": ["limit=1000", "after=0-0"],
    "/v1/clusters": ["sort=spread", "limit=1", "fact_checked=true", "fact_checked=false",
                     "target_country=AL", "language=sr", "kind=threat&sort=spread&limit=200",
                     "since=2000-01-01T00:00:00Z", "include=story_id&limit=200",
                     "include=story_id&sort=spread"],
    "/taxii2/alerthub/collections/{collection_id}/objects/": TAXII_QUERIES,
    "/taxii2/alerthub/collections/{collection_id}/manifest/": TAXII_QUERIES,
}  # fmt: skip
UNKNOWN_CLUSTER = "cl_" + "0" * 24
CHECKER = "fc-me"  # a fact-checker named on a RED alert


@dataclass
class Alert:
    hub_id: str
    cluster_id: str
    alert_id: str
    title: str
    domain: str
    # Further markers (a fact-check's id and claim), and whether the cluster id is one the
    # readers see anyway (a visible report of the same content is in its cluster).
    extra: tuple[str, ...] = ()
    cluster_shown: bool = False

    @property
    def markers(self) -> tuple[str, ...]:
        cluster = () if self.cluster_shown else (self.cluster_id,)
        stix = report_id(self.hub_id)  # what a TAXII manifest shows of it
        return (self.hub_id, stix, *cluster, self.alert_id, self.title, self.uuid, *self.extra)

    @property
    def uuid(self) -> str:
        """The alert's MISP event uuid (hub/interop/misp.py)."""
        return ulid_to_uuid(self.hub_id)


@dataclass
class Scene:
    api: Api
    withheld: dict[str, Alert]
    control: Alert  # GREEN, visible to all: proves each path does show alerts
    end: Alert  # posted last: once a reader has it, it has had the chance to get the others
    # A RED alert to the recipient and a fact-checker, fact-checked by it, and a GREEN report of
    # the same content (its twin): every reader sees the cluster, none the fact-check.
    checked: Alert
    twin: Alert
    pulls: dict[str, str]  # reader -> its pull subscription
    hooks: dict[str, tuple[str, Receiver]]  # reader -> its webhook subscription and receiver
    live: dict[str, ClientResponse] = field(default_factory=dict)  # SSE opened before posting

    def hidden_from(self, reader: str) -> list[Alert]:
        found = [self.withheld[k] for k, (_, who) in WITHHELD.items() if reader in who]
        return [*found, self.checked] if reader in READERS else found

    def subscriptions_of(self, reader: str) -> list[str]:
        if reader == "operator":  # the operator may read every feed: read the readers' ones
            return [self.pulls[r] for r in READERS if r != "operator"]
        return [self.pulls[reader], self.hooks[reader][0]]


async def post_alert(api: Api, node: str, alert_id: str, **sharing: Any) -> Alert:
    title = f"Marker title {alert_id} {new_ulid()}"
    body = unique_threat(alert_id, title=title, **sharing)
    status, answer = await api.post(node, body)
    assert status == 201, answer
    domain = body["indicators"][0]["value"]
    return Alert(answer["hub_id"], answer["cluster_id"], alert_id, title, domain)


async def open_sse(api: Api, node: str, sub_id: str) -> ClientResponse:
    resp = await api.client.get(
        f"/v1/subscriptions/{sub_id}/events",
        headers={**api.auth(node), "Accept": "text/event-stream"},
    )
    assert resp.status == 200
    return resp


async def read_sse_until(resp: ClientResponse, needle: str, within: float = 10.0) -> str:
    """The stream's text up to and including `needle` (an event's hub id)."""
    text = ""
    async with asyncio.timeout(within):
        while needle not in text:
            chunk = await resp.content.readany()
            if not chunk:
                break
            text += chunk.decode()
    assert needle in text, "the stream ended before the last alert"
    # The rest of the frame that carries `needle`.
    while not text.endswith("\n\n"):
        text += (await resp.content.readany()).decode()
    return text


@pytest.fixture
async def scene(dapi: Api, receivers: list[Receiver]) -> AsyncIterator[Scene]:
    api = dapi
    await api.add_node(SENDER, "AL")
    await api.add_node(RECIPIENT, "ME")
    await api.add_node("rs-cert", "RS")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("publish", "subscribe"))
    await api.add_node(CHECKER, "ME", kind="civil-society", roles=("subscribe", "fact-check"))
    pulls: dict[str, str] = {}
    hooks: dict[str, tuple[str, Receiver]] = {}
    live: dict[str, ClientResponse] = {}
    for reader in ("rs-cert", "fc-ba"):
        pulls[reader] = (await api.subscribe(reader))["id"]
        receiver = await Receiver().start()
        receivers.append(receiver)
        hook = await api.subscribe(reader, {"type": "webhook", "url": receiver.url})
        await wait_status(api, reader, hook["id"], "active")
        hooks[reader] = (hook["id"], receiver)
        live[reader] = await open_sse(api, reader, pulls[reader])
    live["operator"] = await open_sse(api, "operator", pulls["fc-ba"])
    withheld = {
        name: await post_alert(api, SENDER, f"secret-{name}", **sharing)
        for name, (sharing, _) in WITHHELD.items()
    }
    checked = await post_alert(
        api,
        SENDER,
        "secret-checked",
        tlp="RED",
        share={"recipients": [RECIPIENT, CHECKER]},
        indicators=[{"type": "domain", "value": "shared-content.phish.example"}],
    )
    twin_body = unique_threat("twin", indicators=[{"type": "domain", "value": checked.domain}])
    status, answer = await api.post(RECIPIENT, twin_body)
    assert status == 201 and answer["cluster_id"] == checked.cluster_id, answer
    twin = Alert(answer["hub_id"], answer["cluster_id"], "twin", twin_body["title"], checked.domain)
    claim = f"Marker claim {new_ulid()}"
    fact_check = {"id": "fc-secret", "claim_reviewed": claim, "url": "https://fc.example/x",
                  "rating": {"value": 1, "alternate_name": "False"}, "language": "sr",
                  "published_at": "2026-11-21T09:30:00Z", "summary": f"{claim}."}  # fmt: skip
    resp = await api.client.post(
        f"/v1/alerts/{checked.hub_id}/fact-checks", json=fact_check, headers=api.auth(CHECKER)
    )
    assert resp.status == 201, await resp.text()
    checked.extra = ((await resp.json())["fact_check_id"], claim)
    checked.cluster_shown = True
    control = await post_alert(api, SENDER, "control")
    end = await post_alert(api, SENDER, "end")
    for reader, sub in pulls.items():
        events = await api.wait_for_feed(reader, sub, 1, last=end.hub_id)
        assert events and events[-1]["hub_id"] == end.hub_id
    scene = Scene(api, withheld, control, end, checked, twin, pulls, hooks, live)
    yield scene
    for resp in live.values():
        resp.close()


def assert_clean(text: str, hidden: list[Alert], where: str, markers: str = "all") -> None:
    """None of the hidden alerts' markers in `text`. After the reader posted copies of hidden
    content ("copies"), its own copies may share a hidden alert's cluster id, and one of them its
    sender's alert id (ids are per sender): then only hub ids and titles are looked for."""
    for alert in hidden:
        shown = alert.markers if markers == "all" else (alert.hub_id, alert.title)
        for marker in shown:
            assert marker not in text, f"{where} shows {marker!r} of {alert.alert_id}"


def same_answer(a: dict[str, Any], a_id: str, b: dict[str, Any], b_id: str) -> bool:
    """Two error bodies that differ only in the id they name."""
    return (
        a["error"] == b["error"]
        and a.get("details") == b.get("details")
        and a["message"].replace(a_id, "<id>") == b["message"].replace(b_id, "<id>")
    )


def fillings(scene: Scene, reader: str, pattern: str) -> list[dict[str, str]]:
    """Path parameter values to try for `pattern` as `reader`: its own subscriptions, the
    withheld alerts' ids, the control alert's id. A parameter not known here fails the test."""
    choices: list[list[tuple[str, str]]] = []
    for name in path_params(pattern):
        if name == "subscription_id":
            values = scene.subscriptions_of(reader)
        elif name == "hub_id":
            values = [a.hub_id for a in scene.hidden_from(reader)] + [scene.control.hub_id]
        elif name == "name":
            values = ["alert", "status.js"]
        elif name == "cluster_id":
            values = [a.cluster_id for a in scene.hidden_from(reader) if not a.cluster_shown]
            values += [scene.control.cluster_id, scene.twin.cluster_id]
        elif name == "event_uuid":
            values = [a.uuid for a in scene.hidden_from(reader)] + [scene.control.uuid]
        elif name == "token":
            values = ["01M95H9EPPBA609FJCHZ4P67CF.ee995b33a6c172ae5848e699f5656d427a46"]
        elif name == "collection_id":
            values = ["visible", *[s for s in scene.subscriptions_of(reader)]]
        elif name == "object_id":
            values = [report_id(a.hub_id) for a in scene.hidden_from(reader)]
            values.append(report_id(scene.control.hub_id))
        else:
            pytest.fail(
                f"GET {pattern}: path parameter {{{name}}} is new to test_no_leaks.py: say in "
                "fillings() which objects to probe it with"
            )
        choices.append([(name, v) for v in values])
    combos: list[dict[str, str]] = [{}]
    for options in choices:
        combos = [{**c, n: v} for c in combos for n, v in options]
    return combos


async def probe(scene: Scene, reader: str, path: str, hidden: list[Alert]) -> None:
    api = scene.api
    refused("leak: reads by an excluded reader (must show nothing hidden)")
    resp = await api.client.get(path, headers=api.auth(reader))
    if resp.content_type == "text/event-stream":
        text = await read_sse_until(resp, scene.end.hub_id)
        resp.close()
    else:
        text = await resp.text()
    for alert in hidden:  # an id the reader sent may be echoed back ("no alert <id>")
        text = text.replace(alert.hub_id, "<sent>") if alert.hub_id in path else text
        text = text.replace(alert.cluster_id, "<sent>") if alert.cluster_id in path else text
        text = text.replace(alert.uuid, "<sent>") if alert.uuid in path else text
        stix = report_id(alert.hub_id)
        text = text.replace(stix, "<sent>") if stix in path else text
    assert_clean(text, hidden, f"GET {path} as {reader}")
    for alert in hidden:
        if report_id(alert.hub_id) in path:
            refused("leak: withheld STIX id in a path")
            stix, unknown_stix = report_id(alert.hub_id), report_id(new_ulid())
            other = await api.client.get(path.replace(stix, unknown_stix), headers=api.auth(reader))
            assert resp.status == other.status == 404, (path, resp.status, other.status)
            mine = await resp.json(content_type=None)
            theirs = await other.json(content_type=None)
            assert mine["description"].replace(stix, "<id>") == theirs["description"].replace(
                unknown_stix, "<id>"
            )
        if alert.hub_id in path:
            refused("leak: withheld id in a path")
            # Exactly as for an id that never existed (or 403 for a route the reader may not
            # call at all, which says nothing about the alert).
            unknown_id = new_ulid()
            other = await api.client.get(
                path.replace(alert.hub_id, unknown_id), headers=api.auth(reader)
            )
            assert resp.status == other.status in (403, 404), (path, resp.status, other.status)
            assert same_answer(await resp.json(), alert.hub_id, await other.json(), unknown_id)
        if alert.uuid in path:
            refused("leak: withheld MISP event uuid in a path")
            unknown_uuid = str(uuid.uuid4())
            other = await api.client.get(
                path.replace(alert.uuid, unknown_uuid), headers=api.auth(reader)
            )
            assert resp.status == other.status == 404, (path, resp.status, other.status)
            assert same_answer(await resp.json(), alert.uuid, await other.json(), unknown_uuid)
        if alert.cluster_id in path and not alert.cluster_shown:
            refused("leak: withheld cluster in a path")
            other = await api.client.get(
                path.replace(alert.cluster_id, UNKNOWN_CLUSTER), headers=api.auth(reader)
            )
            assert resp.status == other.status == 404, (path, resp.status, other.status)
            assert same_answer(
                await resp.json(), alert.cluster_id, await other.json(), UNKNOWN_CLUSTER
            )


async def test_every_get_route_hides_withheld_alerts(scene: Scene) -> None:
    """Every GET route of the app, with each reader's own subscriptions and the withheld ids in
    its path and with filters and paging, shows an excluded reader none of the withheld alerts;
    the same routes do show the control alert, so the probe is not looking at empty answers."""
    gets = [pattern for method, pattern in served_routes() if method == "GET"]
    for reader in READERS:
        hidden = scene.hidden_from(reader)
        assert hidden
        for pattern in gets:
            for params in fillings(scene, reader, pattern):
                path = pattern.format(**params)
                for query in ["", *QUERIES.get(pattern, [])]:
                    await probe(scene, reader, f"{path}?{query}" if query else path, hidden)
    for reader in ("rs-cert", "fc-ba"):
        status, body = await scene.api.get(reader, f"/v1/alerts/{scene.control.hub_id}")
        assert status == 200 and body["title"] == scene.control.title
        feed = await scene.api.feed(reader, scene.pulls[reader])
        visible = [a.hub_id for k, a in scene.withheld.items() if reader not in WITHHELD[k][1]]
        shown = [*visible, scene.twin.hub_id, scene.control.hub_id, scene.end.hub_id]
        assert [e["hub_id"] for e in feed] == shown
        status, manifest = await scene.api.get(
            reader, f"/v1/subscriptions/{scene.pulls[reader]}/misp/manifest.json"
        )
        assert status == 200 and list(manifest) == [ulid_to_uuid(h) for h in shown]


async def test_listing_pages_never_reach_a_withheld_alert(scene: Scene) -> None:
    """Paging the listing one alert at a time, every page and cursor is clean, and the pages
    add up to exactly what the reader may see."""
    for reader in ("rs-cert", "fc-ba"):
        seen: list[str] = []
        path = "/v1/alerts?limit=1"
        while True:
            status, page = await scene.api.get(reader, path)
            assert status == 200
            assert_clean(str(page), scene.hidden_from(reader), f"listing page as {reader}")
            seen += [a["hub_id"] for a in page["alerts"]]
            if page["next"] is None:
                break
            path = f"/v1/alerts?limit=1&after={page['next']}"
        visible = {a.hub_id for k, a in scene.withheld.items() if reader not in WITHHELD[k][1]}
        assert set(seen) == {scene.control.hub_id, scene.end.hub_id, scene.twin.hub_id} | visible


async def test_taxii_pages_never_reach_a_withheld_alert(scene: Scene) -> None:
    """Paging TAXII's `visible` collection and its manifest one object at a time, every page,
    `next` and header is clean, and the reports add up to exactly what the reader may see."""
    for reader in ("rs-cert", "fc-ba"):
        for resource in ("objects", "manifest"):
            seen: list[str] = []
            base = f"/taxii2/alerthub/collections/visible/{resource}/?limit=1"
            path = base
            while True:
                resp = await scene.api.client.get(path, headers=scene.api.auth(reader))
                assert resp.status == 200
                page = await resp.json(content_type=None)
                where = f"TAXII {resource} page as {reader}"
                assert_clean(str(page) + str(dict(resp.headers)), scene.hidden_from(reader), where)
                seen += [o["id"] for o in page.get("objects", []) if o["id"].startswith("report")]
                if not page["more"]:
                    break
                path = f"{base}&next={page['next']}"
            visible = {a.hub_id for k, a in scene.withheld.items() if reader not in WITHHELD[k][1]}
            shown = {scene.control.hub_id, scene.end.hub_id, scene.twin.hub_id} | visible
            assert sorted(seen) == sorted(report_id(h) for h in shown)


async def test_live_streams_and_webhooks_carry_no_withheld_alert(scene: Scene) -> None:
    """SSE streams opened before the alerts were posted, and webhook pushes, carry the control
    alert but none that the reader may not see."""
    for reader, resp in scene.live.items():
        text = await read_sse_until(resp, scene.end.hub_id)
        assert scene.control.hub_id in text
        assert_clean(text, scene.hidden_from(reader), f"live SSE as {reader}")
    for reader, (_, receiver) in scene.hooks.items():
        await receiver.wait_for(
            lambda r: any(d.event["hub_id"] == scene.end.hub_id for d in r.deliveries)
        )
        pushed = b"".join(d.body for d in receiver.deliveries).decode()
        assert scene.control.hub_id in pushed
        assert_clean(pushed, scene.hidden_from(reader), f"webhook of {reader}")


async def test_retract_and_explain_answer_as_for_an_unknown_id(scene: Scene) -> None:
    """Retracting a withheld alert is 404 exactly as for an unknown id (never 403, which would
    say it exists); so is the operator's explain of an alert it may not see."""
    api = scene.api
    for reader in ("rs-cert", "fc-ba"):
        for alert in scene.hidden_from(reader):
            unknown = new_ulid()
            answers = []
            for hub_id in (alert.hub_id, unknown):
                resp = await api.client.post(
                    f"/v1/alerts/{hub_id}/retract", json={"reason": "x"}, headers=api.auth(reader)
                )
                refused("leak: retract a withheld alert")
                answers.append((resp.status, await resp.json()))
            assert answers[0][0] == answers[1][0] == 404
            assert same_answer(answers[0][1], alert.hub_id, answers[1][1], unknown)
    status, body = await api.get(SENDER, f"/v1/alerts/{scene.withheld['red'].hub_id}")
    assert status == 200 and body["status"] == "active"  # nothing was retracted
    for alert in scene.hidden_from("operator"):
        sub = scene.pulls["rs-cert"]
        status, body = await api.get("operator", f"/v1/subscriptions/{sub}/explain/{alert.hub_id}")
        refused("leak: explain a withheld alert")
        assert status == 404 and body["error"] == "not_found"


async def test_dedup_answers_reveal_nothing(scene: Scene) -> None:
    """A reader that posts the content of an alert it may not see is told `created`, with no
    duplicate_of and none of the alert's markers, alone or in a batch; its own alert names no
    hidden co-reporter or related alert; its own feed gets its report as alert.created; and a
    second excluded reader posting the same content corroborates the first one's report (which
    it may see), never the hidden one."""
    api = scene.api
    last = ""  # the newest copy: every reader may see every copy (all GREEN)
    for name, alert in scene.withheld.items():
        posters = [r for r in ("rs-cert", "fc-ba") if r in WITHHELD[name][1]]
        indicators = [{"type": "domain", "value": alert.domain}]
        first: str | None = None
        for reader in posters:
            copy = unique_threat(f"copy-{name}", title=f"copy by {reader}", indicators=indicators)
            # The sender's own alert id too: ids are per sender, so it reveals nothing.
            again = unique_threat(alert.alert_id, title="same id", indicators=indicators)
            refused("leak: dedup probe", 2)
            status, body = await api.post(reader, copy)
            assert status == 201, body
            if first is None:
                assert body["status"] == "created", body
                assert set(body) == {"hub_id", "status", "revision", "cluster_id"}
                first = body["hub_id"]
            else:
                assert body["status"] == "corroborated" and body["duplicate_of"] == first, body
            assert_clean(str(body), [alert], f"dedup answer to {reader}", markers="copies")
            resp = await api.client.post(
                "/v1/alerts/batch", json={"alerts": [again]}, headers=api.auth(reader)
            )
            (result,) = (await resp.json())["results"]
            assert result["status"] in ("created", "corroborated") and "error" not in result
            last = result["hub_id"]
            assert result.get("duplicate_of") in (None, first, body["hub_id"])
            assert_clean(str(result), [alert], f"batch dedup to {reader}", markers="copies")
            _, own = await api.get(reader, f"/v1/alerts/{body['hub_id']}")
            assert alert.hub_id not in {r["hub_id"] for r in own["reporters"]}
            assert alert.hub_id not in own["related"]
            assert_clean(str(own), [alert], f"own copy as {reader}", markers="copies")
    for reader in ("rs-cert", "fc-ba"):
        events = await api.wait_for_feed(reader, scene.pulls[reader], 1, last=last)
        assert events[-1]["hub_id"] == last
        # The first event of each incident in a feed is alert.created: a corroboration first
        # would point at an earlier report the reader never got.
        first_of: dict[str, str] = {}
        for event in events:
            first_of.setdefault(event["cluster_id"], event["type"])
        assert set(first_of.values()) == {"alert.created"}, (reader, first_of)
        assert_clean(str(events), scene.hidden_from(reader), f"feed of {reader}", "copies")


async def test_a_new_subscription_starts_clean(scene: Scene) -> None:
    """A subscription made after the withheld alerts were posted shows none of them, in its
    answer or its feed; the operator's explain for an alert it may see says why it was
    withheld, which is the operator's to know."""
    api = scene.api
    for reader in ("rs-cert", "fc-ba"):
        resp = await api.client.post(
            "/v1/subscriptions", json={"delivery": {"type": "pull"}}, headers=api.auth(reader)
        )
        text = await resp.text()
        assert resp.status == 201
        assert_clean(text, scene.hidden_from(reader), f"new subscription of {reader}")
        sub = (await resp.json())["id"]
        assert await api.feed(reader, sub) == []
    sub = scene.pulls["rs-cert"]
    path = f"/v1/subscriptions/{sub}/explain/{scene.withheld['no-rs'].hub_id}"
    status, body = await api.get("operator", path)
    assert status == 200 and body["verdict"] == "withheld_by_policy", body


CLAIM = "KFOR gomila trupe i oklopna vozila kod Zvečana 15. januara, 500 evra po vojniku"
COPIES = [
    ("ХИТНО: КФОР гомила трупе и оклопна возила код Звечана 15. јануара, 500 евра 🚨", "sr-Cyrl"),
    ("KFOR-i po grumbullon trupa pranë Zveçanit më 15 janar, 500 euro për çdo ushtar", "sq"),
]


async def test_similar_and_story_show_no_withheld_report(dapi: Api) -> None:
    """Reports of one claim withheld from a reader (RED, AMBER, withheld from its country),
    posted before and after its visible copies, appear in no `similar` list it reads (alert,
    pull feed, live SSE), and its story is named as if they did not exist: the same story id
    as for a reader who sees only the visible copies."""
    api = dapi
    await api.add_node(SENDER, "AL")
    await api.add_node(RECIPIENT, "ME")
    await api.add_node("rs-cert", "RS")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("publish", "subscribe"))
    pulls = {r: (await api.subscribe(r))["id"] for r in ("rs-cert", "fc-ba")}
    live = {r: await open_sse(api, r, pulls[r]) for r in pulls}

    async def post(node: str, alert_id: str, text: str, language: str, **sharing: Any) -> str:
        body = {"id": alert_id, "kind": "disinformation", "title": f"Claim {alert_id}",
                "severity": "high", "tlp": "GREEN", "observed_at": "2026-11-20T08:15:00Z",
                "claims": [{"text": text, "language": language}],
                "urls": [f"https://portal.example/{alert_id}"], **sharing}  # fmt: skip
        status, answer = await api.post(node, body)
        assert status == 201, answer
        return str(answer["hub_id"])

    withheld = {
        name: await post(SENDER, f"early-{name}", CLAIM, "sr-Latn", **sharing)
        for name, (sharing, _) in WITHHELD.items()
    }
    visible = [await post(RECIPIENT, f"v{i}", t, lang) for i, (t, lang) in enumerate(COPIES)]
    late = {
        name: await post(SENDER, f"late-{name}", "HITNO: " + CLAIM, "sr-Latn", **sharing)
        for name, (sharing, _) in WITHHELD.items()
    }
    end = await post(RECIPIENT, "end", CLAIM + " (izvor: Telegram)", "sr-Latn")
    for reader in ("rs-cert", "fc-ba"):
        hidden = [withheld[k] for k, (_, who) in WITHHELD.items() if reader in who]
        hidden += [late[k] for k, (_, who) in WITHHELD.items() if reader in who]
        assert hidden
        stories = set()
        for hub_id in [*visible, end]:
            refused("leak: similar and story of a withheld report")
            status, body = await api.get(reader, f"/v1/alerts/{hub_id}")
            assert status == 200
            for marker in hidden:
                assert marker not in str(body), (reader, hub_id)
            assert {s["hub_id"] for s in body["similar"]} >= {*visible, end} - {hub_id}
            stories.add(body["story_id"])
        # Named after the first visible copy, as for a reader that sees only the copies.
        assert len(stories) == 1
        events = await api.wait_for_feed(reader, pulls[reader], 3, last=end)
        text = await read_sse_until(live[reader], end)
        for marker in hidden:
            assert marker not in str(events) and marker not in text, reader
        assert {e["alert"]["story_id"] for e in events if e["hub_id"] in visible} == stories
    status, body = await api.get(RECIPIENT, f"/v1/alerts/{end}")
    assert set(withheld.values()) <= {s["hub_id"] for s in body["similar"]}
    for resp in live.values():
        resp.close()


async def test_a_red_reports_fact_check_is_not_even_counted(scene: Scene) -> None:
    """A fact-check posted on a RED report reaches no node that may not see the report: the
    cluster they see through its GREEN twin counts one report, is not fact-checked (nor listed
    as such), and shows no fact-check on the twin, in its ClaimReview or in any feed; the RED
    report's recipient sees both reports and the fact-check."""
    api = scene.api
    cluster = scene.twin.cluster_id
    for reader in READERS:
        _, listing = await api.get(reader, "/v1/clusters?limit=200")
        (entry,) = [c for c in listing["clusters"] if c["cluster_id"] == cluster]
        assert entry["report_count"] == 1 and entry["node_count"] == 1
        assert entry["fact_checked"] is False and entry["fact_checks"] == []
        assert entry["spread"] == {"countries": 1, "languages": 1, "reports": 1}
        _, checked = await api.get(reader, "/v1/clusters?fact_checked=true&limit=200")
        assert cluster not in {c["cluster_id"] for c in checked["clusters"]}
        _, twin = await api.get(reader, f"/v1/alerts/{scene.twin.hub_id}")
        assert twin["fact_checks"] == []
        resp = await api.client.get(
            f"/v1/alerts/{scene.twin.hub_id}/claimreview", headers=api.auth(reader)
        )
        assert await resp.json(content_type=None) == []
        if reader != "operator":
            feed = await api.feed(reader, scene.pulls[reader])
            assert not [e for e in feed if e["type"].startswith("alert.fact_check")]
    _, seen = await api.get(RECIPIENT, f"/v1/clusters/{cluster}")
    assert seen["report_count"] == 2 and seen["fact_checked"] is True
    assert [f["fact_check_id"] for f in seen["fact_checks"]] == [scene.checked.extra[0]]

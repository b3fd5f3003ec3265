"""The MISP feed and the MISP import against a running hub on real Redis: the feed shows each
reader only what it may see (no hidden alert in the manifest, the hashes or an event fetch,
answered for a hidden uuid exactly as for one that never existed), takes the token as MISP's
feed headers send it, follows updates and retractions; the import stores events as alerts of
the posting node through the ordinary ingest path, with per-event results."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import time
import uuid
from typing import Any

from pymisp import MISPEvent

from hub.interop.misp import ulid_to_uuid
from tests.conftest import Api, disinfo_alert, unique_threat

SENDER = "al-cert"


async def scene(api: Api) -> dict[str, Any]:
    """Nodes, pull subscriptions of a fact-checker and of Serbia's CERT, and four alerts: GREEN
    (all see it), AMBER (not the fact-checker), RED to Montenegro (neither) and GREEN withheld
    from Serbia."""
    await api.add_node(SENDER, "AL")
    await api.add_node("me-cert", "ME")
    await api.add_node("rs-cert", "RS")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    subs = {n: (await api.subscribe(n))["id"] for n in ("fc-ba", "rs-cert")}
    posted = {}
    for name, changes in {
        "green": {},
        "amber": {"tlp": "AMBER"},
        "red": {"tlp": "RED", "share": {"recipients": ["me-cert"]}},
        "no-rs": {"share": {"withhold_from": ["RS"]}},
        "end": {},
    }.items():
        status, body = await api.post(SENDER, unique_threat(f"misp-{name}", **changes))
        assert status == 201, body
        posted[name] = body["hub_id"]
    for node, sub in subs.items():
        events = await api.wait_for_feed(node, sub, 1, last=posted["end"])
        assert events[-1]["hub_id"] == posted["end"]
    return {"subs": subs, "hub_ids": posted}


async def get(api: Api, node: str, path: str, bare: bool = False) -> tuple[int, Any]:
    token = api.tokens[node]
    resp = await api.client.get(
        path, headers={"Authorization": token if bare else f"Bearer {token}"}
    )
    body = await resp.json() if resp.content_type == "application/json" else await resp.text()
    return resp.status, body


def markers(hub_id: str) -> list[str]:
    return [hub_id, ulid_to_uuid(hub_id)]


async def test_the_feed_shows_each_reader_what_it_may_see(api: Api) -> None:
    """Manifest, hashes and events list exactly the alerts the reader may see; PyMISP loads
    every event; a hidden alert's uuid is answered as a uuid that never existed."""
    world = await scene(api)
    ids = world["hub_ids"]
    expected = {"fc-ba": ["green", "no-rs", "end"], "rs-cert": ["green", "amber", "end"]}
    for node, names in expected.items():
        base = f"/v1/subscriptions/{world['subs'][node]}/misp"
        status, manifest = await get(api, node, f"{base}/manifest.json", bare=True)
        assert status == 200
        assert list(manifest) == [ulid_to_uuid(ids[n]) for n in names]
        status, hashes = await get(api, node, f"{base}/hashes.csv")
        assert status == 200
        hidden = [n for n in ids if n not in names]
        for name in hidden:
            for marker in markers(ids[name]):
                assert marker not in str(manifest) and marker not in hashes, (node, name)
        lines = hashes.splitlines()
        for event_uuid in manifest:
            status, event = await get(api, node, f"{base}/{event_uuid}.json", bare=True)
            assert status == 200
            misp = MISPEvent()
            misp.load(copy.deepcopy(event))
            assert misp.uuid == event_uuid
            assert str(misp.timestamp.timestamp()).startswith(manifest[event_uuid]["timestamp"])
            for attribute in misp.attributes:
                line = f"{hashlib.md5(attribute.value.encode()).hexdigest()},{event_uuid}"
                assert line in lines
        never = str(uuid.uuid4())
        _, unknown = await get(api, node, f"{base}/{never}.json")
        for name in hidden:
            hidden_uuid = ulid_to_uuid(ids[name])
            status, answer = await get(api, node, f"{base}/{hidden_uuid}.json")
            assert status == 404
            assert answer["message"].replace(hidden_uuid, "<id>") == unknown["message"].replace(
                never, "<id>"
            )


async def test_only_the_owner_and_operator_read_a_feed(api: Api) -> None:
    """Another node gets 404 for someone else's feed; the operator reads it with both sets of
    eyes (the owner's and its own, so no AMBER), a wrong scheme or no token is 401."""
    world = await scene(api)
    base = f"/v1/subscriptions/{world['subs']['rs-cert']}/misp/manifest.json"
    status, _ = await get(api, "fc-ba", base)
    assert status == 404
    status, manifest = await get(api, "operator", base)
    assert status == 200
    assert ulid_to_uuid(world["hub_ids"]["amber"]) not in manifest
    assert ulid_to_uuid(world["hub_ids"]["green"]) in manifest
    token = api.tokens["rs-cert"]
    for headers in ({}, {"Authorization": f"Basic {token}"}, {"Authorization": "not-a-token"}):
        resp = await api.client.get(base, headers=headers)
        assert resp.status == 401


async def test_updates_and_retractions_reach_the_feed(api: Api) -> None:
    """An update shows in the event with a timestamp not older than before; a retraction keeps
    the event listed (so MISP fetches it), tagged retracted, every attribute deleted, and takes
    its hash lines away."""
    world = await scene(api)
    node, hub_id = "rs-cert", world["hub_ids"]["green"]
    base = f"/v1/subscriptions/{world['subs'][node]}/misp"
    event_uuid = ulid_to_uuid(hub_id)
    _, before = await get(api, node, f"{base}/{event_uuid}.json")
    update = unique_threat("misp-green", revision=2, title="Updated title")
    status, answer = await api.post(SENDER, update)
    assert (status, answer["status"]) == (200, "updated")
    await api.wait_for_feed(node, world["subs"][node], 6)
    _, after = await get(api, node, f"{base}/{event_uuid}.json")
    assert after["Event"]["info"] == "Updated title"
    assert int(after["Event"]["timestamp"]) >= int(before["Event"]["timestamp"])
    resp = await api.client.post(
        f"/v1/alerts/{hub_id}/retract", json={"reason": "wrong"}, headers=api.auth(SENDER)
    )
    assert resp.status == 200
    _, gone = await get(api, node, f"{base}/{event_uuid}.json")
    assert {"name": 'alerthub:status="retracted"'} in gone["Event"]["Tag"]
    assert all(a["deleted"] for a in gone["Event"]["Attribute"])
    _, manifest = await get(api, node, f"{base}/manifest.json")
    assert event_uuid in manifest
    _, hashes = await get(api, node, f"{base}/hashes.csv")
    assert event_uuid not in hashes


def foreign(event_uuid: str, timestamp: int = 1763650000, **changes: Any) -> dict[str, Any]:
    event = {
        "uuid": event_uuid,
        "info": "Phishing kit on a look-alike of the tax portal",
        "date": "2026-11-20",
        "timestamp": str(timestamp),
        "threat_level_id": "1",
        "distribution": "1",
        "Tag": [{"name": "tlp:green"}, {"name": "phishing"}],
        "Attribute": [
            {"type": "domain", "value": f"{event_uuid[:8]}.tax-portal.example"},
            {"type": "ip-dst", "value": "203.0.113.99"},
        ],
    }
    event.update(changes)
    return {"Event": event}


async def import_(api: Api, node: str, body: Any) -> tuple[int, Any]:
    resp = await api.client.post("/v1/imports/misp", json=body, headers=api.auth(node))
    return resp.status, await resp.json()


async def test_import_stores_events_as_alerts_of_the_poster(api: Api) -> None:
    """Each event succeeds or fails on its own: a good one is created (and reaches a
    subscriber), one for its organisation only is refused with a pointer into the body; the
    same again is unchanged, a later MISP timestamp an update."""
    await api.add_node(SENDER, "AL")
    await api.add_node("rs-cert", "RS")
    sub = (await api.subscribe("rs-cert"))["id"]
    good, private = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"response": [foreign(good), foreign(private, distribution="0")]}
    status, answer = await import_(api, SENDER, body)
    assert status == 200
    first, second = answer["results"]
    assert (first["status"], first["uuid"], first["pointer"]) == (
        "created",
        good,
        "/response/0/Event",
    )
    assert second["status"] == "rejected"
    assert second["error"]["details"][0]["pointer"] == "/response/1/Event/distribution"
    hub_id = first["hub_id"]
    status, alert = await api.get("rs-cert", f"/v1/alerts/{hub_id}")
    assert status == 200
    assert (alert["id"], alert["sender"], alert["tlp"]) == (good, SENDER, "GREEN")
    assert [e["hub_id"] for e in await api.wait_for_feed("rs-cert", sub, 1)] == [hub_id]
    status, again = await import_(api, SENDER, foreign(good))
    assert again["results"][0]["status"] == "unchanged"
    status, later = await import_(api, SENDER, [foreign(good, timestamp=1763650600)])
    assert later["results"][0]["status"] == "updated"
    assert later["results"][0]["revision"] == 1763650600


async def test_import_errors_point_into_the_misp_json(api: Api) -> None:
    """A value the schema refuses is reported at the MISP attribute it came from; what the
    alert has no field for is listed as skipped."""
    await api.add_node(SENDER, "AL")
    event = foreign(str(uuid.uuid4()))
    event["Event"]["Attribute"].append({"type": "ip-dst", "value": "999.1.1.1"})
    event["Event"]["Attribute"].append({"type": "pattern-in-file", "value": "x"})
    status, answer = await import_(api, SENDER, [event])
    assert status == 200
    [result] = answer["results"]
    assert result["status"] == "rejected"
    pointers = {d["pointer"] for d in result["error"]["details"]}
    assert pointers == {"/0/Event/Attribute/2/value"}
    assert result["skipped"] == [
        {"pointer": "/0/Event/Attribute/3", "reason": "a pattern-in-file attribute has no "
         "field in a threat alert"}
    ]  # fmt: skip


async def test_a_feed_event_posted_back_is_the_same_alert(api: Api) -> None:
    """An event read from the feed and posted by another node gives an alert with the same
    content: a corroboration of the first report."""
    await api.add_node(SENDER, "AL")
    await api.add_node("rs-cert", "RS")
    sub = (await api.subscribe("rs-cert"))["id"]
    status, posted = await api.post(SENDER, disinfo_alert("d-misp"))
    assert status == 201
    await api.wait_for_feed("rs-cert", sub, 1)
    path = f"/v1/subscriptions/{sub}/misp/{ulid_to_uuid(posted['hub_id'])}.json"
    _, event = await get(api, "rs-cert", path)
    status, answer = await import_(api, "rs-cert", event)
    assert status == 200
    [result] = answer["results"]
    assert result["status"] == "corroborated", result
    assert result["duplicate_of"] == posted["hub_id"]


async def test_import_refuses_what_it_cannot_read(api: Api) -> None:
    """Wrong role 403, not JSON 400, no events or over 500 422, wrong media type 415."""
    await api.add_node(SENDER, "AL")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    status, answer = await import_(api, "fc-ba", foreign(str(uuid.uuid4())))
    assert (status, answer["error"]) == (403, "forbidden")
    for body, expected in (([], 422), ([foreign(str(uuid.uuid4()))] * 501, 422), ("x", 400)):
        status, answer = await import_(api, SENDER, body)
        assert status == expected, answer
    resp = await api.client.post(
        "/v1/imports/misp", data=b"{}", headers={**api.auth(SENDER), "Content-Type": "text/plain"}
    )
    assert resp.status == 415


class MispFetcher:
    """What MISP's feed fetcher does on each scheduled pull: read the manifest, fetch each event
    that is new or whose timestamp is later than the copy it holds, and keep it."""

    def __init__(self, api: Api, node: str, sub_id: str) -> None:
        self.api, self.node = api, node
        self.base = f"/v1/subscriptions/{sub_id}/misp"
        self.held: dict[str, dict[str, Any]] = {}

    async def pull(self) -> list[str]:
        """The uuids fetched this time."""
        _, manifest = await get(self.api, self.node, f"{self.base}/manifest.json", bare=True)
        fetched = []
        for event_uuid, entry in manifest.items():
            held = self.held.get(event_uuid)
            if held is None or int(entry["timestamp"]) > int(held["Event"]["timestamp"]):
                status, event = await get(self.api, self.node, f"{self.base}/{event_uuid}.json")
                assert status == 200
                self.held[event_uuid] = event
                fetched.append(event_uuid)
        return fetched


async def next_second() -> None:
    """Until the clock's second turns: MISP's timestamps are whole seconds, so a change in the
    second of the last pull is one MISP cannot tell from it (docs/misp.md, Limits)."""
    await asyncio.sleep(1.001 - time.time() % 1)


async def test_a_misp_fetcher_gets_each_change_once(api: Api) -> None:
    """Pulled as MISP does, the feed settles (nothing more to fetch) once the second of the
    last change is over; then an update, a retraction and a new alert are exactly what the next
    pull fetches, and the pull after it fetches nothing."""
    world = await scene(api)
    ids, sub = world["hub_ids"], world["subs"]["rs-cert"]
    fetcher = MispFetcher(api, "rs-cert", sub)
    assert len(await fetcher.pull()) == 3
    await next_second()
    await fetcher.pull()  # copies taken in the second of their change come again, once
    assert await fetcher.pull() == []
    status, answer = await api.post(SENDER, unique_threat("misp-green", revision=2, title="New"))
    assert answer["status"] == "updated", answer
    resp = await api.client.post(
        f"/v1/alerts/{ids['amber']}/retract", json={"reason": "wrong"}, headers=api.auth(SENDER)
    )
    assert resp.status == 200
    status, late = await api.post(SENDER, unique_threat("misp-late"))
    assert status == 201
    await api.wait_for_feed("rs-cert", sub, 1, last=late["hub_id"])
    await next_second()
    changed = {ulid_to_uuid(h) for h in (ids["green"], ids["amber"], late["hub_id"])}
    assert set(await fetcher.pull()) == changed
    assert fetcher.held[ulid_to_uuid(ids["green"])]["Event"]["info"] == "New"
    retracted = fetcher.held[ulid_to_uuid(ids["amber"])]["Event"]
    assert {"name": 'alerthub:status="retracted"'} in retracted["Tag"]
    assert await fetcher.pull() == []

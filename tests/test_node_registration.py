"""A node's registration is noticed: the operator's act is audit-logged, and the live nodes of
the new node's country get a node.registered event on every delivery path (pull, SSE, webhook),
in feed order with their alerts (issue 15, finding 2: an operator-made node is never a quiet way
to read what is shared with a country)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
import yaml
from jsonschema import Draft202012Validator
from structlog.testing import capture_logs

from hub.store.keys import Keys
from tests.conftest import Api, unique_threat
from tests.delivery.test_webhooks import wait_status, webhook
from tests.receivers import Receiver
from tests.sse_client import SseReader

KEYS = Keys()
EVENT_FIELDS = {"id", "type", "occurred_at", "node"}
OPENAPI = Path(__file__).resolve().parent.parent / "schemas" / "openapi.yaml"


async def open_stream(api: Api, node: str, sub_id: str) -> SseReader:
    resp = await api.client.get(
        f"/v1/subscriptions/{sub_id}/events",
        headers={**api.auth(node), "Accept": "text/event-stream"},
    )
    assert resp.status == 200, await resp.text()
    return SseReader(resp)


def openapi_validator(name: str) -> Draft202012Validator:
    """A validator of one of openapi.yaml's component schemas."""
    spec = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    )


def check_registration(event: dict[str, Any], node_id: str, listed: dict[str, Any]) -> None:
    """`event` is the node.registered event of `node_id`, naming it as GET /v1/nodes does, in
    the shape schemas/openapi.yaml gives."""
    assert set(event) == EVENT_FIELDS, event
    openapi_validator("FeedEvent").validate(event)
    assert event["type"] == "node.registered"
    assert event["node"] == {
        "id": node_id,
        "name": listed["name"],
        "country": listed["country"],
        "kind": listed["kind"],
        "roles": listed["roles"],
        "created_at": listed["created_at"],
        "registered_by": "operator",
    }
    assert event["occurred_at"] == listed["created_at"]


async def listed_node(api: Api, node_id: str) -> dict[str, Any]:
    status, body = await api.get("operator", "/v1/nodes")
    assert status == 200, body
    return next(n for n in body["nodes"] if n["id"] == node_id)


async def test_registration_reaches_the_countrys_nodes_by_pull_sse_and_webhook(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """Registering rs-2 (RS) gives each of rs-1's subscriptions (pull, SSE, webhook) exactly one
    node.registered event naming rs-2, before the alert posted after it; me-1 gets none."""
    await dapi.add_node("al-pub", "AL", roles=("publish",))
    await dapi.add_node("rs-1", "RS", roles=("subscribe",))
    await dapi.add_node("me-1", "ME", roles=("subscribe",))
    receiver = await Receiver().start()
    receivers.append(receiver)
    pull = await dapi.subscribe("rs-1", min_severity="critical")  # a filter: announced anyway
    streamed = await dapi.subscribe("rs-1")
    hook = await webhook(dapi, "rs-1", receiver)
    other = await dapi.subscribe("me-1")
    await wait_status(dapi, "rs-1", hook["id"], "active")
    reader = await open_stream(dapi, "rs-1", streamed["id"])

    await dapi.add_node("rs-2", "RS", roles=("publish", "subscribe"))
    status, posted = await dapi.post("al-pub", unique_threat("after-rs-2", severity="critical"))
    assert status == 201, posted
    listed = await listed_node(dapi, "rs-2")

    # me-1 has the alert, so fan-out is past the registration: it got nothing of it.
    got = await dapi.wait_for_feed("me-1", other["id"], 1)
    assert [e["type"] for e in got] == ["alert.created"]
    for sub in (pull, streamed):
        got = await dapi.wait_for_feed("rs-1", sub["id"], 2)
        assert [e["type"] for e in got] == ["node.registered", "alert.created"], got
        check_registration(got[0], "rs-2", listed)
    first, second = await reader.next_event(), await reader.next_event()
    assert (first["event"], second["event"]) == ("node.registered", "alert.created")
    assert first["id"] == first["data"]["id"]
    check_registration(first["data"], "rs-2", listed)
    await receiver.wait_for(lambda r: len(r.deliveries) == 2)
    delivered = [d.event for d in receiver.deliveries]
    assert [e["type"] for e in delivered] == ["node.registered", "alert.created"]
    check_registration(delivered[0], "rs-2", listed)
    assert receiver.deliveries[0].headers["webhook-id"] == delivered[0]["id"]


async def test_the_new_node_is_not_told_of_itself_but_of_later_newcomers(api: Api) -> None:
    """rs-2's own subscription (made after it was registered) gets rs-3's registration and
    never one of its own; a node of no country (the operator) announces nobody."""
    await api.add_node("al-pub", "AL", roles=("publish",))
    await api.add_node("rs-2", "RS", roles=("subscribe",))
    sub = await api.subscribe("rs-2")
    await api.add_node("rs-3", "RS", roles=("subscribe",))
    await api.add_node("al-2", "AL", roles=("subscribe",))
    status, posted = await api.post("al-pub", unique_threat("marker"))
    assert status == 201, posted
    got = await api.wait_for_feed("rs-2", sub["id"], 2, last=posted["hub_id"])
    assert [(e["type"], e.get("node", {}).get("id")) for e in got] == [
        ("node.registered", "rs-3"),
        ("alert.created", None),
    ]


async def test_registration_is_audit_logged_without_the_token(api: Api, redis_url: str) -> None:
    """POST /v1/nodes logs node_registered with the operator, the node's id, country, kind and
    roles, and never its token; the event log holds one entry for it, and none for the hub's
    own operator node (no country: announced to nobody)."""
    with capture_logs() as logs:
        token = await api.add_node("me-2", "ME", roles=("publish", "subscribe"))
    found = [e for e in logs if e["event"] == "node_registered"]
    assert len(found) == 1, logs
    assert {k: found[0][k] for k in ("registered_by", "node_id", "country", "kind", "roles")} == {
        "registered_by": "operator",
        "node_id": "me-2",
        "country": "ME",
        "kind": "government",
        "roles": ["publish", "subscribe"],
    }
    assert token not in json.dumps(logs, default=str)
    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(KEYS.events)
    finally:
        client.close()
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields[b"type"] == b"node_registered" and fields[b"node_id"] == b"me-2"
    assert token.encode() not in b"".join(fields.values())

"""`/v1/status`, `/readyz` and `explain`: exact numbers after a known scenario, from Redis."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.embedded import RedisServer, free_port, start_redis_server
from tests.conftest import Api, unique_threat
from tests.receivers import Receiver


async def status_of(api: Api) -> dict[str, Any]:
    status, body = await api.get("operator", "/v1/status")
    assert status == 200, body
    return body


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def regional_scenario(api: Api) -> dict[str, str]:
    """AL posts two new alerts and one update, ME corroborates one of them, RS sends one
    invalid alert, AL resends a stale revision; FC (a fact-checker) never calls."""
    await api.add_node("al-cert", "AL")
    await api.add_node("me-cert", "ME")
    await api.add_node("rs-cert", "RS")
    await api.add_node("fc", "RS", kind="civil-society", roles=("subscribe",))
    ids: dict[str, str] = {}
    status, body = await api.post("al-cert", unique_threat("al-1"))
    assert status == 201 and body["status"] == "created"
    ids["al-1"] = body["hub_id"]
    status, body = await api.post("al-cert", unique_threat("al-2"))
    assert status == 201
    ids["al-2"] = body["hub_id"]
    status, body = await api.post(
        "me-cert",
        unique_threat("me-1", indicators=[{"type": "domain", "value": "al-1.phish.example"}]),
    )
    assert status == 201 and body["status"] == "corroborated", body
    ids["me-1"] = body["hub_id"]
    status, body = await api.post("al-cert", unique_threat("al-2", revision=2, title="Now worse"))
    assert status == 200 and body["status"] == "updated", body
    status, body = await api.post("rs-cert", {"id": "rs-bad", "kind": "threat"})
    assert status == 422
    status, body = await api.post("al-cert", unique_threat("al-2", revision=1))
    assert status == 409
    return ids


async def test_status_needs_the_operator(api: Api) -> None:
    """Status is for operators only: 401 without a token, 403 for a publishing node."""
    resp = await api.client.get("/v1/status")
    assert resp.status == 401
    await api.add_node("al-cert", "AL")
    status, _ = await api.get("al-cert", "/v1/status")
    assert status == 403


async def test_status_counts_are_exact_after_a_scenario(api: Api) -> None:
    """Ingest totals, per-minute counts, per-node counts and the 24-hour sharing chart add up
    to exactly what the scenario did."""
    await regional_scenario(api)
    body = await status_of(api)

    ingest = body["ingest"]
    assert ingest["created"] == 2
    assert ingest["corroborated"] == 1
    assert ingest["updated"] == 1
    assert ingest["accepted"] == 4
    assert ingest["rejected"] == 2
    assert ingest["rejected_by_reason"] == {"conflict": 1, "validation_failed": 1}
    assert len(ingest["per_minute"]) == 60
    for field in ("accepted", "corroborated", "rejected"):
        assert sum(m[field] for m in ingest["per_minute"]) == ingest[field]
    assert ingest["last_minute"] == ingest["per_minute"][-1]

    nodes = {n["id"]: n for n in body["nodes"]}
    assert (nodes["al-cert"]["posted"], nodes["al-cert"]["rejected"]) == (3, 1)
    assert (nodes["me-cert"]["posted"], nodes["me-cert"]["rejected"]) == (1, 0)
    assert (nodes["rs-cert"]["posted"], nodes["rs-cert"]["rejected"]) == (0, 1)
    assert nodes["al-cert"]["last_seen"] is not None
    assert nodes["fc"]["last_seen"] is None and nodes["fc"]["posted"] == 0

    sharing = body["sharing_24h"]
    assert len(sharing["hours"]) == 24
    assert {c: sum(v) for c, v in sharing["countries"].items()} == {"AL": 2, "ME": 1}

    redis_part = body["redis"]
    assert redis_part["reachable"] is True and redis_part["latency_ms"] >= 0
    assert redis_part["used_memory"] > 0
    assert set(redis_part["persistence"]) >= {"aof_enabled", "appendfsync"}
    assert body["version"] and body["uptime_s"] >= 0


async def test_pull_lag_counts_unread_events_and_fanout_lag_drains(api: Api) -> None:
    """A pull subscription's lag is the events it has not pulled; pulling them makes it 0. The
    fan-out lag is 0 once every logged event is fanned out."""
    await api.add_node("al-cert", "AL")
    await api.add_node("ba-cert", "BA")
    sub = await api.subscribe("ba-cert")
    posted = []
    for n in range(3):
        status, body = await api.post("al-cert", unique_threat(f"lag-{n}"))
        assert status == 201
        posted.append(body["hub_id"])

    async def fanned_out() -> bool:
        body = await status_of(api)
        return body["fanout"]["lag"] == 0 and _sub(body, sub["id"])["lag"] == 3

    await wait_until(fanned_out, what="fan-out to finish")
    body = await status_of(api)
    view = _sub(body, sub["id"])
    assert view["state"] == "active" and view["delivery"] == "pull"
    assert view["last_delivery_at"] is None and view["lagging"] is False

    events = await api.feed("ba-cert", sub["id"])
    assert [e["hub_id"] for e in events] == posted
    view = _sub(await status_of(api), sub["id"])
    assert view["lag"] == 0 and view["last_delivery_at"] is not None


async def test_failing_webhook_is_lagging_with_failures(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """A verified webhook whose endpoint answers 500 to every try shows its failures and dead
    letter, is paused, and is flagged as lagging once events wait behind the pause."""
    api = dapi
    sub = await failing_webhook(api, receivers)
    status, _ = await api.post("al-cert", unique_threat("wh-1"))
    assert status == 201

    async def paused() -> bool:
        view = _sub(await status_of(api), sub["id"])
        return view["dead_letters"] == 1 and view["state"] == "paused"

    await wait_until(paused, what="the event to become a dead letter")
    view = _sub(await status_of(api), sub["id"])
    assert view["consecutive_failures"] == 3
    assert view["lag"] == 0 and view["lagging"] is False  # dead letters are counted apart
    assert view["last_failure_at"] is not None and view["last_delivery_at"] is None

    for n in range(2):
        status, _ = await api.post("al-cert", unique_threat(f"wh-next-{n}"))
        assert status == 201

    async def waiting() -> bool:
        return _sub(await status_of(api), sub["id"])["lag"] == 2

    await wait_until(waiting, what="the paused subscription's lag")
    assert _sub(await status_of(api), sub["id"])["lagging"] is True


async def failing_webhook(api: Api, receivers: list[Receiver]) -> dict[str, Any]:
    """al-cert and ba-cert, and ba-cert's verified webhook whose endpoint then answers 500 to
    the next three deliveries (a whole retry schedule of delivery_settings)."""
    await api.add_node("al-cert", "AL")
    await api.add_node("ba-cert", "BA")
    receiver = await Receiver(answers=[500, 500, 500]).start()
    receivers.append(receiver)
    sub = await api.subscribe("ba-cert", {"type": "webhook", "url": receiver.url})

    async def active() -> bool:
        return _sub(await status_of(api), sub["id"])["state"] == "active"

    await wait_until(active, what="the webhook to be verified")
    return sub


async def test_explain_gives_each_reason(api: Api) -> None:
    """Explain names why: received, withheld by the sender, filtered out, or stored before the
    subscription began; an alert the operator may not see is 404."""
    await api.add_node("al-cert", "AL")
    await api.add_node("rs-cert", "RS")
    status, early = await api.post("al-cert", unique_threat("early"))
    assert status == 201
    sub = await api.subscribe("rs-cert", kinds=["threat"])
    status, shared = await api.post("al-cert", unique_threat("shared"))
    status, withheld = await api.post(
        "al-cert", unique_threat("withheld", share={"withhold_from": ["RS"]})
    )
    status, disinfo = await api.post(
        "al-cert",
        {
            "id": "dis-1",
            "kind": "disinformation",
            "title": "A fabricated claim",
            "severity": "high",
            "tlp": "GREEN",
            "observed_at": "2026-11-20T08:15:00Z",
            "narrative": "A narrative nobody else reports",
        },
    )
    assert status == 201, disinfo
    status, red = await api.post(
        "al-cert", unique_threat("red", tlp="RED", share={"recipients": ["rs-cert"]})
    )
    assert status == 201
    await api.wait_for_feed("rs-cert", sub["id"], 2, last=red["hub_id"])

    async def explained(hub_id: str) -> dict[str, Any]:
        status, body = await api.get("operator", f"/v1/subscriptions/{sub['id']}/explain/{hub_id}")
        assert status == 200, body
        return body

    body = await explained(shared["hub_id"])
    assert body["verdict"] == "received" and body["received"] is True
    assert body["policy"]["deliver"] is True and body["filter"]["matches"] is True

    body = await explained(withheld["hub_id"])
    assert body["verdict"] == "withheld_by_policy" and body["received"] is False
    assert "withholds" in body["reason"] and "RS" in body["reason"]

    body = await explained(disinfo["hub_id"])
    assert body["verdict"] == "filtered_out"
    assert "disinformation" in body["reason"] and body["policy"]["deliver"] is True

    body = await explained(early["hub_id"])
    assert body["verdict"] == "before_subscription"

    status, _ = await api.get("operator", f"/v1/subscriptions/{sub['id']}/explain/{red['hub_id']}")
    assert status == 404
    status, _ = await api.get(
        "rs-cert", f"/v1/subscriptions/{sub['id']}/explain/{shared['hub_id']}"
    )
    assert status == 403


async def test_readyz_reports_redis_and_fanout(api: Api) -> None:
    """Ready: Redis answers and this process's fan-out loop runs."""
    resp = await api.client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {
        "status": "ready",
        "redis": "ok",
        "fanout": "running",
        "role": "all",
    }


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    server: RedisServer = start_redis_server(tmp_path / "redis", port=free_port())
    yield server
    server.stop()


async def test_status_with_redis_down_says_unreachable(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet, own_redis: RedisServer
) -> None:
    """With Redis gone the operator still gets a status: reachable false, no stale numbers."""
    app_settings = dataclasses.replace(settings, redis_url=own_redis.url)
    api = Api(await aiohttp_client(create_app(app_settings, schema_set)))
    assert (await status_of(api))["redis"]["reachable"] is True
    own_redis.stop()
    body = await status_of(api)
    assert body["redis"] == {"reachable": False}
    assert body["ingest"] is None and body["subscriptions"] is None


def _sub(body: dict[str, Any], sub_id: str) -> dict[str, Any]:
    (view,) = [s for s in body["subscriptions"] if s["id"] == sub_id]
    return view


async def test_counts_do_not_reveal_withheld_content(api: Api) -> None:
    """A node that posts content it may not see (a RED alert for others) is answered created,
    and the counts say created too: nothing in the status reveals the withheld report."""
    await api.add_node("al-cert", "AL")
    await api.add_node("me-cert", "ME")
    await api.add_node("rs-cert", "RS")
    status, _ = await api.post(
        "al-cert", unique_threat("red-1", tlp="RED", share={"recipients": ["me-cert"]})
    )
    assert status == 201
    status, body = await api.post(
        "rs-cert",
        unique_threat("rs-1", indicators=[{"type": "domain", "value": "red-1.phish.example"}]),
    )
    assert status == 201 and body["status"] == "created"
    status, body = await api.post(
        "me-cert",
        unique_threat("me-1", indicators=[{"type": "domain", "value": "red-1.phish.example"}]),
    )
    assert status == 201 and body["status"] == "corroborated"  # me-cert may see the RED report
    ingest = (await status_of(api))["ingest"]
    assert (ingest["created"], ingest["corroborated"], ingest["accepted"]) == (2, 1, 3)
    assert sum(m["corroborated"] for m in ingest["per_minute"]) == 1


async def test_batch_refusals_are_counted_per_alert(api: Api) -> None:
    """A batch with two invalid alerts of three counts two refusals; one over the rate limit
    counts each of its alerts."""
    await api.add_node("al-cert", "AL")
    batch = {"alerts": [unique_threat("b-1"), {"id": "b-2", "kind": "threat"}, {"id": "b-3"}]}
    resp = await api.client.post("/v1/alerts/batch", json=batch, headers=api.auth("al-cert"))
    assert resp.status == 200
    body = await status_of(api)
    assert body["ingest"]["rejected_by_reason"] == {"validation_failed": 2}
    node = next(n for n in body["nodes"] if n["id"] == "al-cert")
    assert (node["posted"], node["rejected"]) == (1, 2)


async def test_operator_reads_and_rewinds_do_not_move_lag(api: Api) -> None:
    """Only the owner's reading moves a pull subscription's lag, and going back over old
    events does not make it look behind."""
    await api.add_node("al-cert", "AL")
    await api.add_node("ba-cert", "BA")
    sub = await api.subscribe("ba-cert")
    for n in range(3):
        status, _ = await api.post("al-cert", unique_threat(f"op-{n}"))
        assert status == 201
    events = await api.wait_for_feed("ba-cert", sub["id"], 3)
    assert len(events) == 3
    # The owner has read all three (wait_for_feed pulled them).
    assert _sub(await status_of(api), sub["id"])["lag"] == 0
    status, _ = await api.post("al-cert", unique_threat("op-3"))

    async def one_behind() -> bool:
        return _sub(await status_of(api), sub["id"])["lag"] == 1

    await wait_until(one_behind, what="the fourth event to reach the feed")
    events = await api.feed("operator", sub["id"])
    assert len(events) == 4
    assert _sub(await status_of(api), sub["id"])["lag"] == 1  # the operator's look
    status, body = await api.get("ba-cert", f"/v1/subscriptions/{sub['id']}/feed?limit=1")
    assert status == 200 and len(body["events"]) == 1
    assert _sub(await status_of(api), sub["id"])["lag"] == 1  # a rewind
    await api.feed("ba-cert", sub["id"], after=events[2]["id"])
    assert _sub(await status_of(api), sub["id"])["lag"] == 0


async def test_explain_after_a_filter_change_and_a_revocation(api: Api) -> None:
    """An alert that matches only the changed filter was not received (and explain says so); a
    revoked owner's subscription gets nothing."""
    await api.add_node("al-cert", "AL")
    await api.add_node("rs-cert", "RS")
    sub = await api.subscribe("rs-cert", kinds=["disinformation"])
    status, alert = await api.post("al-cert", unique_threat("later-match"))
    assert status == 201
    status, marker = await api.post(
        "al-cert",
        {
            "id": "marker",
            "kind": "disinformation",
            "title": "A marker claim",
            "severity": "high",
            "tlp": "GREEN",
            "observed_at": "2026-11-20T08:15:00Z",
            "narrative": "A narrative that marks the end of fan-out",
        },
    )
    await api.wait_for_feed("rs-cert", sub["id"], 1, last=marker["hub_id"])
    resp = await api.client.patch(
        f"/v1/subscriptions/{sub['id']}",
        json={"filter": {"kinds": ["threat"]}},
        headers=api.auth("rs-cert"),
    )
    assert resp.status == 200, await resp.text()
    path = f"/v1/subscriptions/{sub['id']}/explain/{alert['hub_id']}"
    status, body = await api.get("operator", path)
    assert status == 200 and body["verdict"] == "not_received"
    assert body["filter"]["matches"] is True and body["received"] is False

    resp = await api.client.delete("/v1/nodes/rs-cert", headers=api.auth("operator"))
    assert resp.status in (200, 204), await resp.text()
    status, body = await api.get("operator", path)
    assert status == 200 and body["verdict"] == "owner_revoked"


async def test_explain_names_a_dead_letter(dapi: Api, receivers: list[Receiver]) -> None:
    """A webhook whose delivery of the alert failed every attempt: explain says received, and
    that it is a dead letter."""
    api = dapi
    sub = await failing_webhook(api, receivers)
    status, alert = await api.post("al-cert", unique_threat("dl-1"))
    assert status == 201

    async def dead() -> bool:
        return _sub(await status_of(api), sub["id"])["dead_letters"] == 1

    await wait_until(dead, what="the dead letter")
    status, body = await api.get(
        "operator", f"/v1/subscriptions/{sub['id']}/explain/{alert['hub_id']}"
    )
    assert status == 200 and body["verdict"] == "received"
    assert "dead letter" in body["reason"]


async def test_status_shows_when_and_by_whom_each_node_was_registered(api: Api) -> None:
    """Each node in /v1/status carries its roles, created_at and registered_by (the operator
    node that registered it), so a node added to read a country's alerts is in plain view."""
    await api.add_node("ops-desk", "ME", roles=("operator",))
    resp = await api.client.post(
        "/v1/nodes",
        json={
            "id": "me-new",
            "name": "New",
            "country": "ME",
            "kind": "government",
            "roles": ["subscribe"],
        },
        headers=api.auth("ops-desk"),
    )
    assert resp.status == 201, await resp.text()
    created = (await resp.json())["created_at"]
    nodes = {n["id"]: n for n in (await status_of(api))["nodes"]}
    assert nodes["me-new"]["registered_by"] == "ops-desk"
    assert nodes["me-new"]["created_at"] == created
    assert nodes["me-new"]["roles"] == ["subscribe"]
    assert nodes["ops-desk"]["registered_by"] == "operator"
    assert nodes["operator"]["registered_by"] == "hub"

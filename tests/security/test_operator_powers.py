"""What the operator may and may not do to a partner's subscription: it runs the hub, so it may
read a subscription, pause, resume and delete it; only the owner may change where and what it
delivers (API.md; DESIGN.md: the operator "cannot redirect a partner's deliveries")."""

from __future__ import annotations

from typing import Any

import orjson
import redis

from hub.store.keys import Keys
from tests.conftest import Api
from tests.delivery.test_webhooks import wait_status, webhook
from tests.receivers import Receiver
from tests.security.tally import refused

KEYS = Keys()


def stored(redis_url: str, sub_id: str) -> dict[str, Any]:
    """The subscription's record as Redis holds it (secret and verified URL included)."""
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.hget(KEYS.subscriptions, sub_id)
    finally:
        client.close()
    assert raw is not None
    return orjson.loads(raw)


async def test_operator_cannot_repoint_or_refilter_a_partners_webhook(
    dapi: Api, receivers: list[Receiver], redis_url: str
) -> None:
    """An operator's PATCH that names `url` or `filter` is 403 forbidden and changes nothing:
    not the URL, the status, the secret nor the verified endpoint; the owner is still served."""
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    await dapi.add_node("ops-desk", "ME", roles=("operator",))
    partner = await Receiver().start()
    attacker = await Receiver().start()
    receivers.extend([partner, attacker])
    created = await webhook(dapi, "fc-ba", partner)
    await wait_status(dapi, "fc-ba", created["id"], "active")
    before = stored(redis_url, created["id"])
    path = f"/v1/subscriptions/{created['id']}"
    bodies = (
        {"url": attacker.url},
        {"url": attacker.url, "status": "active"},
        {"filter": {"kinds": ["threat"]}},
        {"filter": {}, "status": "paused"},
        {"url": "not a url"},  # refused for who asks, before what it says is checked
    )
    for operator in ("operator", "ops-desk"):
        for body in bodies:
            resp = await dapi.client.patch(path, json=body, headers=dapi.auth(operator))
            refused("operator: redirect a partner's subscription")
            answer = await resp.json()
            assert resp.status == 403, (operator, body, answer)
            assert answer["error"] == "forbidden" and "owner" in answer["message"]
    assert stored(redis_url, created["id"]) == before
    assert not attacker.verifications and not attacker.deliveries


async def test_operator_may_pause_and_resume_a_partners_subscription(
    dapi: Api, receivers: list[Receiver], redis_url: str
) -> None:
    """The operator's pause and resume work and keep the URL, secret and verification."""
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    partner = await Receiver().start()
    receivers.append(partner)
    created = await webhook(dapi, "fc-ba", partner)
    await wait_status(dapi, "fc-ba", created["id"], "active")
    before = stored(redis_url, created["id"])
    path = f"/v1/subscriptions/{created['id']}"
    resp = await dapi.client.patch(path, json={"status": "paused"}, headers=dapi.auth("operator"))
    assert resp.status == 200 and (await resp.json())["status"] == "paused"
    resp = await dapi.client.patch(path, json={"status": "active"}, headers=dapi.auth("operator"))
    assert resp.status == 200 and (await resp.json())["status"] == "active"
    after = stored(redis_url, created["id"])
    for field in ("delivery", "secret", "verified_url", "filter", "owner"):
        assert after[field] == before[field], field


async def test_owner_may_still_repoint_its_webhook(dapi: Api, receivers: list[Receiver]) -> None:
    """The owner's PATCH of url and filter is accepted, and the new endpoint is verified."""
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    first = await Receiver().start()
    second = await Receiver().start()
    receivers.extend([first, second])
    created = await webhook(dapi, "fc-ba", first)
    await wait_status(dapi, "fc-ba", created["id"], "active")
    resp = await dapi.client.patch(
        f"/v1/subscriptions/{created['id']}",
        json={"url": second.url, "filter": {"kinds": ["threat"]}},
        headers=dapi.auth("fc-ba"),
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["delivery"]["url"] == second.url and body["filter"]["kinds"] == ["threat"]
    await wait_status(dapi, "fc-ba", created["id"], "active")
    assert second.verifications

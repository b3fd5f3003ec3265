"""Webhook delivery against real receivers on loopback: verification, Standard Webhooks
signatures, retries, isolation of a hanging endpoint, dead letters and pausing."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.delivery.signing import SignatureError, verify
from tests.conftest import Api, threat_alert, unique_threat
from tests.receivers import Receiver


async def webhook(api: Api, node: str, receiver: Receiver, **filter_) -> dict:
    return await api.subscribe(node, {"type": "webhook", "url": receiver.url}, **filter_)


async def wait_status(api: Api, node: str, sub_id: str, status: str, within: float = 10.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        code, sub = await api.get(node, f"/v1/subscriptions/{sub_id}")
        assert code == 200, sub
        if sub["status"] == status:
            return sub
        if time.monotonic() > deadline:
            raise AssertionError(f"subscription stayed {sub['status']}, not {status}")
        await asyncio.sleep(0.02)


async def nodes(api: Api) -> None:
    await api.add_node("al-cert", country="AL")
    await api.add_node("me-cert", country="ME")


async def test_webhook_is_verified_then_gets_signed_events(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """Pending until the endpoint echoes the challenge; then each event arrives signed the
    Standard Webhooks way, verifiable with the secret returned once."""
    await nodes(dapi)
    receiver = await Receiver().start()
    receivers.append(receiver)
    created = await webhook(dapi, "me-cert", receiver)
    assert created["status"] == "pending" and created["secret"].startswith("whsec_")
    await wait_status(dapi, "me-cert", created["id"], "active")
    challenge = receiver.verifications[0]
    verify(created["secret"], challenge.headers, challenge.body)
    assert challenge.event["subscription_id"] == created["id"]

    status, posted = await dapi.post("al-cert", threat_alert("t-1"))
    assert status == 201
    await receiver.wait_for(lambda r: len(r.deliveries) == 1)
    got = receiver.deliveries[0]
    verify(created["secret"], got.headers, got.body)
    assert got.headers["webhook-id"] == got.event["id"]
    assert got.event["type"] == "alert.created" and got.event["hub_id"] == posted["hub_id"]
    with pytest.raises(SignatureError):
        verify(created["secret"], got.headers, got.body.replace(b"t-1", b"t-2"))
    _, again = await dapi.get("me-cert", f"/v1/subscriptions/{created['id']}")
    assert "secret" not in again


async def test_endpoint_that_does_not_echo_the_challenge_gets_no_alerts(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """An endpoint that never proves intent stays unverified, then paused, and gets no alert."""
    await nodes(dapi)
    receiver = await Receiver(echo_challenge=False).start()
    receivers.append(receiver)
    created = await webhook(dapi, "me-cert", receiver)
    await dapi.post("al-cert", threat_alert("t-1"))
    paused = await wait_status(dapi, "me-cert", created["id"], "paused")
    assert "challenge" in paused["status_reason"]
    assert len(receiver.verifications) == 3  # the whole schedule: 0, 0.2, 0.2 s
    assert receiver.deliveries == []


async def test_the_challenge_echoed_as_plain_text_verifies(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """The challenge alone as plain text, with a trailing line break, verifies the endpoint."""
    await nodes(dapi)
    receiver = await Receiver(challenge_form="text").start()
    receivers.append(receiver)
    created = await webhook(dapi, "me-cert", receiver)
    await wait_status(dapi, "me-cert", created["id"], "active")
    await dapi.post("al-cert", threat_alert("t-1"))
    await receiver.wait_for(lambda r: len(r.deliveries) == 1)


async def test_500_twice_then_200_delivers_on_the_third_try(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """A receiver that fails twice gets the same event, same webhook-id, on the third try."""
    await nodes(dapi)
    receiver = await Receiver(answers=[500, 500]).start()
    receivers.append(receiver)
    created = await webhook(dapi, "me-cert", receiver)
    await wait_status(dapi, "me-cert", created["id"], "active")
    await dapi.post("al-cert", threat_alert("t-1"))
    await receiver.wait_for(lambda r: len(r.deliveries) == 3)
    ids = {d.headers["webhook-id"] for d in receiver.deliveries}
    assert len(ids) == 1
    gaps = [
        b.received_at - a.received_at
        for a, b in zip(receiver.deliveries, receiver.deliveries[1:], strict=False)
    ]
    assert all(gap >= 0.2 * 0.8 - 0.01 for gap in gaps), gaps  # the schedule, with jitter
    status, letters = await dapi.get("me-cert", f"/v1/subscriptions/{created['id']}/dead-letters")
    assert status == 200 and letters["dead_letters"] == []


async def test_hanging_endpoint_does_not_delay_another(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """While one endpoint hangs on its delivery, another gets the same alert promptly."""
    await nodes(dapi)
    hanging = await Receiver(hang=True).start()
    healthy = await Receiver().start()
    receivers.extend([hanging, healthy])
    slow = await webhook(dapi, "me-cert", hanging)
    fast = await webhook(dapi, "me-cert", healthy)
    await wait_status(dapi, "me-cert", slow["id"], "active")
    await wait_status(dapi, "me-cert", fast["id"], "active")
    await dapi.post("al-cert", threat_alert("t-0"))
    await hanging.wait_for(lambda r: len(r.deliveries) == 1)
    started = time.monotonic()
    await dapi.post("al-cert", threat_alert("t-1"))
    await healthy.wait_for(lambda r: len(r.deliveries) == 2, within=1.0)
    assert time.monotonic() - started < 1.0  # the hanging one waits out a 2 s timeout


async def test_failing_endpoint_dead_letters_pauses_and_replays(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """After the last retry the event is a dead letter and the subscription is paused; a
    replay after resuming delivers it."""
    await nodes(dapi)
    receiver = await Receiver(answers=[503, 503, 503]).start()
    receivers.append(receiver)
    created = await webhook(dapi, "me-cert", receiver)
    sub_id = created["id"]
    await wait_status(dapi, "me-cert", sub_id, "active")
    _, posted = await dapi.post("al-cert", threat_alert("t-1"))
    paused = await wait_status(dapi, "me-cert", sub_id, "paused")
    assert "503" in paused["status_reason"]
    _, letters = await dapi.get("me-cert", f"/v1/subscriptions/{sub_id}/dead-letters")
    (letter,) = letters["dead_letters"]
    assert letter["hub_id"] == posted["hub_id"] and letter["attempts"] == 3
    assert letter["last_status"] == 503

    resp = await dapi.client.patch(
        f"/v1/subscriptions/{sub_id}", json={"status": "active"}, headers=dapi.auth("me-cert")
    )
    assert resp.status == 200 and (await resp.json())["status"] == "active"
    resp = await dapi.client.post(
        f"/v1/subscriptions/{sub_id}/dead-letters/replay", headers=dapi.auth("me-cert")
    )
    assert (await resp.json()) == {"replayed": 1}
    await receiver.wait_for(lambda r: len(r.deliveries) == 4)
    assert receiver.deliveries[-1].event["hub_id"] == posted["hub_id"]
    _, letters = await dapi.get("me-cert", f"/v1/subscriptions/{sub_id}/dead-letters")
    assert letters["dead_letters"] == []


async def test_retry_after_is_honoured(dapi: Api, receivers: list[Receiver]) -> None:
    """A 429 with Retry-After: 1 is tried again no sooner than a second later."""
    await nodes(dapi)
    receiver = await Receiver(answers=[429], retry_after="1").start()
    receivers.append(receiver)
    created = await webhook(dapi, "me-cert", receiver)
    await wait_status(dapi, "me-cert", created["id"], "active")
    await dapi.post("al-cert", threat_alert("t-1"))
    await receiver.wait_for(lambda r: len(r.deliveries) == 2, within=5.0)
    first, second = receiver.deliveries
    assert second.received_at - first.received_at >= 0.95


async def test_resuming_an_unverified_webhook_does_not_skip_verification(
    dapi: Api, receivers: list[Receiver]
) -> None:
    """A pending webhook paused by request and resumed goes back to pending, not active: its
    endpoint has still not proved it wants the traffic."""
    await nodes(dapi)
    receiver = await Receiver(echo_challenge=False).start()
    receivers.append(receiver)
    created = await webhook(dapi, "me-cert", receiver)
    path = f"/v1/subscriptions/{created['id']}"
    for status, expected in (("paused", "paused"), ("active", "pending")):
        resp = await dapi.client.patch(path, json={"status": status}, headers=dapi.auth("me-cert"))
        assert (await resp.json())["status"] == expected
    await dapi.post("al-cert", threat_alert("t-1"))
    await wait_status(dapi, "me-cert", created["id"], "paused")
    assert receiver.deliveries == []


async def test_events_arrive_in_feed_order(dapi: Api, receivers: list[Receiver]) -> None:
    """With no failures, a webhook gets its feed's events one at a time in feed order (the
    order promised per subscription), each exactly once; a pull of the same events agrees."""
    await nodes(dapi)
    receiver = await Receiver().start()
    receivers.append(receiver)
    created = await webhook(dapi, "me-cert", receiver)
    await wait_status(dapi, "me-cert", created["id"], "active")
    pull = await dapi.subscribe("me-cert", {"type": "pull"})
    posted = await asyncio.gather(
        *(dapi.post("al-cert", unique_threat(f"t-{i}")) for i in range(30))
    )
    assert all(status == 201 for status, _ in posted)
    await receiver.wait_for(lambda r: len(r.deliveries) == 30)
    delivered = [d.event["hub_id"] for d in receiver.deliveries]
    feed = await dapi.wait_for_feed("me-cert", pull["id"], 30)
    assert delivered == [entry["hub_id"] for entry in feed]
    assert len(set(delivered)) == 30

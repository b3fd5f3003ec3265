"""HubClient against a real hub on real Redis: every method does what API.md says."""

from __future__ import annotations

import json
from contextlib import aclosing

import pytest

from alerthub_client import Event, NotFound, Page, Unauthenticated, verify_webhook
from tests.client.hubs import client_for, until
from tests.conftest import OPERATOR_TOKEN, Api, unique_threat
from tests.receivers import Receiver


async def test_post_one_get_retract(dapi: Api) -> None:
    """post_alert answers created, then unchanged for a resend and updated for a revision;
    get_alert shows the stored alert; retract marks it retracted."""
    await dapi.add_node("al-cert", "AL")
    async with client_for(dapi, "al-cert") as hub:
        created = await hub.post_alert(unique_threat("a-1"))
        assert created["status"] == "created" and created["revision"] == 1
        assert (await hub.post_alert(unique_threat("a-1")))["status"] == "unchanged"
        updated = await hub.post_alert(unique_threat("a-1", revision=2))
        assert (updated["status"], updated["revision"]) == ("updated", 2)
        alert = await hub.get_alert(created["hub_id"])
        assert alert["hub_id"] == created["hub_id"] and alert["sender"] == "al-cert"
        answer = await hub.retract(created["hub_id"], "false positive")
        assert answer == {"hub_id": created["hub_id"], "status": "retracted"}
        assert (await hub.get_alert(created["hub_id"]))["status"] == "retracted"


async def test_post_many_in_order_with_a_rejection_across_batches(dapi: Api) -> None:
    """post_alerts gives one result per alert in input order, the refused one in the middle
    as a rejected result (no exception), split into batches of batch_size and of bytes."""
    await dapi.add_node("al-cert", "AL")
    alerts = [unique_threat(f"m-{i}") for i in range(7)]
    del alerts[3]["title"]  # refused by the hub, alone
    alerts[5] = "not an alert"  # type: ignore[assignment]  # refused here, unsent
    progress: list[int] = []
    async with client_for(dapi, "al-cert") as hub:
        results = await hub.post_alerts(alerts, batch_size=3, on_progress=progress.append)
        assert [r["index"] for r in results] == list(range(7))
        assert [r["status"] for r in results] == ["created"] * 3 + ["rejected", "created"] + [
            "rejected",
            "created",
        ]
        assert results[3]["error"]["error"] == "validation_failed"
        assert results[5]["error"]["error"] == "validation_failed"
        # Two requests of three: 0-2, then 3, 4 and 6 (5 was refused here and takes no place).
        assert progress == [3, 7]

        stored = [a async for a in hub.iter_alerts(limit=500)]
        assert sorted(a["id"] for a in stored) == ["m-0", "m-1", "m-2", "m-4", "m-6"]

        # By bytes: a batch limit of about two alerts makes batches of two.
        more = [unique_threat(f"b-{i}") for i in range(5)]
        one = len(json.dumps(more[0], ensure_ascii=False, separators=(",", ":")).encode())
        progress.clear()
        results = await hub.post_alerts(
            more, on_progress=progress.append, max_batch_bytes=2 * one + 200
        )
        assert [r["status"] for r in results] == ["created"] * 5
        assert [r["index"] for r in results] == list(range(5))
        assert progress == [2, 4, 5]
        # An alert bigger than any batch is refused unsent; the others go.
        huge = unique_threat("huge", summary="x" * 5000)
        results = await hub.post_alerts(
            [huge, unique_threat("small")], max_batch_bytes=2 * one + 200
        )
        assert results[0]["status"] == "rejected"
        assert results[0]["error"]["error"] == "payload_too_large"
        assert results[1]["status"] == "created"
        # Nothing sendable: no request, and the progress still reaches the end.
        progress.clear()
        results = await hub.post_alerts([[]], on_progress=progress.append)  # type: ignore[list-item]
        assert results[0]["status"] == "rejected" and progress == [1]
        assert await hub.post_alerts([]) == []


async def test_list_pages_and_iter_alerts_follows_next(dapi: Api) -> None:
    """list_alerts gives a page and its next cursor; iter_alerts walks every page, newest
    first; filters pass through."""
    await dapi.add_node("al-cert", "AL")
    async with client_for(dapi, "al-cert") as hub:
        posted = [(await hub.post_alert(unique_threat(f"l-{i}")))["hub_id"] for i in range(5)]
        page = await hub.list_alerts(limit=2)
        assert isinstance(page, Page) and len(page.items) == 2 and page.next is not None
        second = await hub.list_alerts(limit=2, after=page.next)
        assert {a["hub_id"] for a in second.items}.isdisjoint(a["hub_id"] for a in page.items)
        walked = [a["hub_id"] async for a in hub.iter_alerts(limit=2)]
        assert walked == posted[::-1]
        assert [a async for a in hub.iter_alerts(kind="disinformation")] == []
        assert len([a async for a in hub.iter_alerts(kind="threat", target_country="AL")]) == 5


async def test_pull_subscription_crud_and_pull_with_cursor(dapi: Api) -> None:
    """subscribe (pull), list, get, update, pull with a cursor, delete."""
    await dapi.add_node("al-cert", "AL")
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    async with client_for(dapi, "al-cert") as pub, client_for(dapi, "fc-ba") as sub_hub:
        sub = await sub_hub.subscribe({"kinds": ["threat"]})
        assert sub["status"] == "active" and "secret" not in sub
        assert [s["id"] for s in await sub_hub.list_subscriptions()] == [sub["id"]]
        got = await sub_hub.get_subscription(sub["id"])
        assert got["filter"]["kinds"] == ["threat"] and got["delivery"] == {"type": "pull"}
        paused = await sub_hub.update_subscription(sub["id"], {"status": "paused"})
        assert paused["status"] == "paused"
        active = await sub_hub.update_subscription(sub["id"], {"status": "active"})
        assert active["status"] == "active"

        hub_ids = [(await pub.post_alert(unique_threat(f"p-{i}")))["hub_id"] for i in range(3)]
        first = await until(lambda: sub_hub.pull(sub["id"], limit=2), lambda p: len(p.items) == 2)
        assert [e["hub_id"] for e in first.items] == hub_ids[:2] and first.next is not None
        rest = await until(
            lambda: sub_hub.pull(sub["id"], after=first.next), lambda p: len(p.items) == 1
        )
        assert [e["hub_id"] for e in rest.items] == hub_ids[2:]
        assert rest.items[0]["type"] == "alert.created"
        empty = await sub_hub.pull(sub["id"], after=rest.next)
        assert empty.items == [] and empty.next == rest.next

        await sub_hub.delete_subscription(sub["id"])
        with pytest.raises(NotFound):
            await sub_hub.get_subscription(sub["id"])
        assert await sub_hub.list_subscriptions() == []


async def test_webhook_subscription_verified_and_delivered(dapi: Api, receivers: list) -> None:
    """subscribe(webhook_url=...) returns the secret; the endpoint's challenge makes it
    active; a posted alert arrives signed with that secret."""
    await dapi.add_node("al-cert", "AL")
    await dapi.add_node("me-cert", "ME")
    receiver = await Receiver().start()
    receivers.append(receiver)
    async with client_for(dapi, "al-cert") as pub, client_for(dapi, "me-cert") as hub:
        sub = await hub.subscribe(webhook_url=receiver.url)
        assert sub["status"] == "pending" and sub["secret"].startswith("whsec_")
        await until(lambda: hub.get_subscription(sub["id"]), lambda s: s["status"] == "active")
        posted = await pub.post_alert(unique_threat("w-1"))
        await receiver.wait_for(lambda r: len(r.deliveries) == 1)
        delivery = receiver.deliveries[0]
        event = verify_webhook(sub["secret"], delivery.headers, delivery.body)
        assert event["hub_id"] == posted["hub_id"] and event["type"] == "alert.created"


async def test_events_stream_and_resume_from_a_given_id(dapi: Api) -> None:
    """events() yields the feed's events live as Event(id, type, data), in order; started
    with last_event_id it gives only what follows."""
    await dapi.add_node("al-cert", "AL")
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    async with client_for(dapi, "al-cert") as pub, client_for(dapi, "fc-ba") as hub:
        sub = await hub.subscribe()
        hub_ids = [(await pub.post_alert(unique_threat(f"e-{i}")))["hub_id"] for i in range(3)]
        got: list[Event] = []
        async with aclosing(hub.events(sub["id"])) as events:
            async for event in events:
                got.append(event)
                if len(got) == 3:
                    break
        assert [e.data["hub_id"] for e in got] == hub_ids
        assert all(e.type == "alert.created" and e.id == e.data["id"] for e in got)
        async with aclosing(hub.events(sub["id"], last_event_id=got[0].id)) as events:
            assert (await anext(events)).id == got[1].id


async def test_events_type_a_registration_in_the_subscribers_country(dapi: Api) -> None:
    """A node registered in the subscriber's country comes through events() as an Event whose
    `node` names it and whose `hub_id` is None, in order before the next alert's."""
    await dapi.add_node("al-cert", "AL")
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    async with client_for(dapi, "al-cert") as pub, client_for(dapi, "fc-ba") as hub:
        sub = await hub.subscribe()
        await dapi.add_node("ba-new", "BA", roles=("subscribe",))
        posted = await pub.post_alert(unique_threat("after-ba-new"))
        async with aclosing(hub.events(sub["id"])) as events:
            first, second = await anext(events), await anext(events)
        assert (first.type, first.hub_id, second.hub_id) == (
            "node.registered",
            None,
            posted["hub_id"],
        )
        assert first.node is not None and first.node["id"] == "ba-new"
        assert first.node["registered_by"] == "operator" and second.node is None


async def test_nodes_status_and_ready(dapi: Api) -> None:
    """create_node returns a working token; list_nodes shows it; revoke_node ends it;
    status and ready answer."""
    async with client_for(dapi, "operator") as op:
        assert op.token == OPERATOR_TOKEN
        node = await op.create_node(
            {
                "id": "mk-cert",
                "name": "MKD-CIRT",
                "country": "MK",
                "kind": "government",
                "roles": ["publish"],
            }
        )
        assert node["id"] == "mk-cert" and node["token"]
        assert "mk-cert" in {n["id"] for n in await op.list_nodes()}
        dapi.tokens["mk-cert"] = node["token"]
        async with client_for(dapi, "mk-cert") as mk:
            assert (await mk.post_alert(unique_threat("n-1")))["status"] == "created"
            await op.revoke_node("mk-cert")
            with pytest.raises(Unauthenticated) as caught:
                await mk.post_alert(unique_threat("n-2"))
            assert caught.value.status == 401
        status = await op.status()
        assert status["redis"]["reachable"] is True and "version" in status
        assert await op.ready() is True

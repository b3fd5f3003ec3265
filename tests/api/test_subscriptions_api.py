"""The subscriptions API: who may create, see, change and delete what, and clear refusals."""

from __future__ import annotations

import redis

from hub.store.keys import Keys
from tests.conftest import Api, unique_threat


async def nodes(api: Api) -> None:
    await api.add_node("al-cert", country="AL")
    await api.add_node("fc-ba", country="BA", kind="civil-society", roles=("subscribe",))
    await api.add_node("pub-only", country="ME", roles=("publish",))


async def test_create_list_get_patch_delete(api: Api) -> None:
    """The owner sees its subscription in full (filter normalised, no secret for pull),
    changes its filter, pauses it and deletes it; then it is gone."""
    await nodes(api)
    created = await api.subscribe("fc-ba", kinds=["threat"], min_severity="high")
    assert created["status"] == "active" and "secret" not in created
    assert created["filter"] == {
        "kinds": ["threat"], "target_countries": [], "source_countries": [],
        "min_severity": "high", "tags_any": [], "languages": [],
    }  # fmt: skip
    sub = f"/v1/subscriptions/{created['id']}"
    status, listing = await api.get("fc-ba", "/v1/subscriptions")
    assert status == 200 and [s["id"] for s in listing["subscriptions"]] == [created["id"]]
    resp = await api.client.patch(
        sub, json={"filter": {"languages": ["sq"]}, "status": "paused"}, headers=api.auth("fc-ba")
    )
    changed = await resp.json()
    assert resp.status == 200 and changed["status"] == "paused"
    assert changed["filter"]["languages"] == ["sq"] and changed["filter"]["kinds"] == []
    resp = await api.client.delete(sub, headers=api.auth("fc-ba"))
    assert resp.status == 204
    status, body = await api.get("fc-ba", sub)
    assert (status, body["error"]) == (404, "not_found")


async def test_others_get_404_and_the_operator_sees_all(api: Api) -> None:
    """Another node cannot tell a subscription exists; the operator can see and manage it."""
    await nodes(api)
    created = await api.subscribe("fc-ba")
    sub = f"/v1/subscriptions/{created['id']}"
    for path in (sub, f"{sub}/feed", f"{sub}/dead-letters"):
        status, _ = await api.get("al-cert", path)
        assert status == 404, path
    resp = await api.client.delete(sub, headers=api.auth("al-cert"))
    assert resp.status == 404
    _, own = await api.get("al-cert", "/v1/subscriptions")
    assert own["subscriptions"] == []
    status, _ = await api.get("operator", sub)
    assert status == 200
    _, everything = await api.get("operator", "/v1/subscriptions")
    assert [s["id"] for s in everything["subscriptions"]] == [created["id"]]


async def test_role_and_token_checks(api: Api) -> None:
    """No token: 401; a node without the subscribe role: 403."""
    await nodes(api)
    body = {"delivery": {"type": "pull"}}
    resp = await api.client.post("/v1/subscriptions", json=body)
    assert resp.status == 401
    resp = await api.client.post("/v1/subscriptions", json=body, headers=api.auth("pub-only"))
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"


async def test_bad_bodies_get_clear_answers(api: Api) -> None:
    """Schema problems are 422 with pointers; wrong media type 415; not JSON 400."""
    await nodes(api)
    auth = api.auth("fc-ba")
    resp = await api.client.post(
        "/v1/subscriptions", json={"filter": {"min_severity": "huge"}}, headers=auth
    )
    body = await resp.json()
    assert resp.status == 422 and {d["pointer"] for d in body["details"]} >= {
        "/filter/min_severity"
    }
    resp = await api.client.post("/v1/subscriptions", data=b"{", headers={
        **auth, "Content-Type": "application/json"})  # fmt: skip
    assert resp.status == 400
    resp = await api.client.post("/v1/subscriptions", data=b"{}", headers={
        **auth, "Content-Type": "text/plain"})  # fmt: skip
    assert resp.status == 415
    created = await api.subscribe("fc-ba")
    resp = await api.client.patch(f"/v1/subscriptions/{created['id']}", json={}, headers=auth)
    assert resp.status == 422
    resp = await api.client.patch(
        f"/v1/subscriptions/{created['id']}", json={"url": "https://example.org/hook"}, headers=auth
    )
    assert resp.status == 409
    for query in ("after=yesterday", "limit=0", "limit=5000", "colour=red"):
        status, body = await api.get("fc-ba", f"/v1/subscriptions/{created['id']}/feed?{query}")
        assert status == 422, query


async def test_private_webhook_urls_are_refused_unless_allowed(api: Api) -> None:
    """Loopback, private and link-local webhook URLs (any spelling) are refused with a pointer."""
    await nodes(api)
    for url in (
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://2130706433/hook",
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest",
        "http://[::ffff:127.0.0.1]/hook",
    ):
        resp = await api.client.post(
            "/v1/subscriptions",
            json={"delivery": {"type": "webhook", "url": url}},
            headers=api.auth("fc-ba"),
        )
        body = await resp.json()
        assert resp.status == 422, url
        assert body["details"][0]["pointer"] == "/delivery/url", body
        assert body["details"][0]["rule"] == "public_address"


async def test_a_refused_local_webhook_names_the_setting_that_allows_it(api: Api) -> None:
    """A webhook on loopback or a private address (a newcomer's local receiver) is refused
    with a message naming ALERTHUB_ALLOW_PRIVATE_WEBHOOKS; other refused addresses (the cloud
    metadata service, documentation ranges) are not given that hint."""
    await nodes(api)
    hinted = {
        "http://127.0.0.1:9000/hook": True,
        "http://localhost:9000/hook": True,
        "http://[::1]:9000/hook": True,
        "http://192.168.1.20/hook": True,
        "http://[fd00::7]/hook": True,
        "http://169.254.169.254/latest": False,
        "http://203.0.113.5/hook": False,
    }
    for url, hint in hinted.items():
        resp = await api.client.post(
            "/v1/subscriptions",
            json={"delivery": {"type": "webhook", "url": url}},
            headers=api.auth("fc-ba"),
        )
        body = await resp.json()
        assert resp.status == 422, url
        (detail,) = body["details"]
        assert ("ALERTHUB_ALLOW_PRIVATE_WEBHOOKS=true" in detail["message"]) == hint, detail


async def test_allowed_private_webhook_and_new_url_goes_back_to_pending(dapi: Api) -> None:
    """With private webhooks allowed a loopback URL is accepted as pending; changing the URL
    of a subscription asks the new endpoint to verify again."""
    await dapi.add_node("fc-ba", country="BA", kind="civil-society", roles=("subscribe",))
    created = await dapi.subscribe("fc-ba", {"type": "webhook", "url": "http://127.0.0.1:9/a"})
    assert created["status"] == "pending"
    resp = await dapi.client.patch(
        f"/v1/subscriptions/{created['id']}",
        json={"url": "http://127.0.0.1:9/b"},
        headers=dapi.auth("fc-ba"),
    )
    changed = await resp.json()
    assert changed["status"] == "pending" and changed["delivery"]["url"] == "http://127.0.0.1:9/b"


async def test_delete_removes_the_feed(api: Api, redis_url: str) -> None:
    """Deleting a subscription removes its feed and delivery state from Redis."""
    await nodes(api)
    created = await api.subscribe("al-cert")
    await api.post("al-cert", unique_threat("t-1"))
    await api.wait_for_feed("al-cert", created["id"], 1)
    resp = await api.client.delete(
        f"/v1/subscriptions/{created['id']}", headers=api.auth("al-cert")
    )
    assert resp.status == 204
    client = redis.Redis.from_url(redis_url)
    assert client.exists(*Keys().subscription_keys(created["id"])) == 0
    client.close()


async def test_operator_reading_a_feed_sees_only_what_it_may_see(api: Api) -> None:
    """An operator may read a partner's feed, but a RED alert that names only that partner
    stays hidden from the operator there as it does on GET /v1/alerts/{id}."""
    await nodes(api)
    await api.add_node("me-cert", country="ME")
    sub = (await api.subscribe("me-cert"))["id"]
    _, red = await api.post(
        "al-cert", unique_threat("red", tlp="RED", share={"recipients": ["me-cert"]})
    )
    _, green = await api.post("al-cert", unique_threat("green"))
    owner_view = await api.wait_for_feed("me-cert", sub, 2)
    assert [e["hub_id"] for e in owner_view] == [red["hub_id"], green["hub_id"]]
    status, _ = await api.get("operator", f"/v1/alerts/{red['hub_id']}")
    assert status == 404
    assert [e["hub_id"] for e in await api.feed("operator", sub)] == [green["hub_id"]]

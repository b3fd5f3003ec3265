"""Nodes and tokens: add, list, revoke; tokens kept as hashes; a revoked token fails at once."""

from __future__ import annotations

import redis

from hub.store.keys import Keys
from tests.conftest import OPERATOR_TOKEN, Api, threat_alert


async def test_operator_adds_node_and_token_works(api: Api) -> None:
    """POST /v1/nodes answers 201 with the node and a token that authenticates at once."""
    resp = await api.client.post(
        "/v1/nodes",
        json={
            "id": "al-cert",
            "name": "AKCESK",
            "country": "AL",
            "kind": "government",
            "roles": ["publish"],
            "defaults": {"withhold_from": ["RS"]},
        },
        headers=api.auth("operator"),
    )
    assert resp.status == 201
    body = await resp.json()
    assert body["id"] == "al-cert" and body["defaults"] == {"withhold_from": ["RS"]}
    assert body["token"].startswith("ah_")
    api.tokens["al-cert"] = body["token"]
    status, _ = await api.post("al-cert", threat_alert())
    assert status == 201


async def test_duplicate_node_id_conflicts(api: Api) -> None:
    """A node id that exists, or existed and was revoked, is a 409."""
    await api.add_node("al-cert", "AL")
    body = {
        "id": "al-cert",
        "name": "x",
        "country": "AL",
        "kind": "government",
        "roles": ["publish"],
    }
    resp = await api.client.post("/v1/nodes", json=body, headers=api.auth("operator"))
    assert resp.status == 409
    await api.client.delete("/v1/nodes/al-cert", headers=api.auth("operator"))
    resp = await api.client.post("/v1/nodes", json=body, headers=api.auth("operator"))
    assert resp.status == 409


async def test_list_nodes_shows_no_tokens(api: Api, redis_url: str) -> None:
    """GET /v1/nodes lists nodes without tokens, and Redis holds no token in clear."""
    token = await api.add_node("al-cert", "AL")
    resp = await api.client.get("/v1/nodes", headers=api.auth("operator"))
    assert resp.status == 200
    text = await resp.text()
    assert "al-cert" in text and token not in text and "token" not in text
    client = redis.Redis.from_url(redis_url)
    try:
        secret = token.split(".", 1)[1].encode()
        for key in client.scan_iter(match=f"{Keys().prefix}*"):
            kind = client.type(key)
            if kind == b"hash":
                assert all(secret not in v for v in client.hgetall(key).values())
            elif kind == b"string":
                assert secret not in client.get(key)
    finally:
        client.close()


async def test_revoked_token_fails_at_once(api: Api) -> None:
    """DELETE /v1/nodes/{id} is 204 and the very next request with that token is 401, on every
    path, although the hub had just used (and cached) the token."""
    await api.add_node("al-cert", "AL")
    status, _ = await api.post("al-cert", threat_alert("before"))
    assert status == 201
    resp = await api.client.delete("/v1/nodes/al-cert", headers=api.auth("operator"))
    assert resp.status == 204
    status, body = await api.post("al-cert", threat_alert("after"))
    assert status == 401 and body["error"] == "unauthenticated"
    status, _ = await api.post("al-cert", {"not": "an alert"})
    assert status == 401
    status, _ = await api.get("al-cert", "/v1/alerts")
    assert status == 401
    resp = await api.client.post(
        "/v1/alerts/batch", json={"alerts": [threat_alert("b")]}, headers=api.auth("al-cert")
    )
    assert resp.status == 401


async def test_unknown_node_id_revoke_is_404(api: Api) -> None:
    """Revoking an unknown node is a 404; revoking one that exists is 204 once it is gone too."""
    await api.add_node("al-cert", "AL")
    resp = await api.client.delete("/v1/nodes/al-cert", headers=api.auth("operator"))
    assert resp.status == 204
    resp = await api.client.delete("/v1/nodes/al-cert", headers=api.auth("operator"))
    assert resp.status == 204
    resp = await api.client.delete("/v1/nodes/nobody", headers=api.auth("operator"))
    assert resp.status == 404


async def test_node_routes_need_operator(api: Api) -> None:
    """A publishing node cannot add, list or revoke nodes."""
    await api.add_node("al-cert", "AL")
    for method, path in (("GET", "/v1/nodes"), ("DELETE", "/v1/nodes/al-cert")):
        resp = await api.client.request(method, path, headers=api.auth("al-cert"))
        assert resp.status == 403
    resp = await api.client.post("/v1/nodes", json={}, headers=api.auth("al-cert"))
    assert resp.status == 403


async def test_invalid_node_body_is_422(api: Api) -> None:
    """A node body that breaks the schema names each problem."""
    resp = await api.client.post(
        "/v1/nodes",
        json={"id": "Bad Id", "name": "x", "country": "Serbia", "kind": "ngo", "roles": []},
        headers=api.auth("operator"),
    )
    assert resp.status == 422
    pointers = {d["pointer"] for d in (await resp.json())["details"]}
    assert {"/id", "/country", "/kind", "/roles"} <= pointers


async def test_missing_and_bad_tokens_are_401(api: Api) -> None:
    """No token, a malformed one, a wrong secret and another scheme are all 401."""
    token = await api.add_node("al-cert", "AL")
    key_id = token.split(".", 1)[0]
    for header in (
        None,
        "Bearer",
        "Bearer nonsense",
        f"Bearer {key_id}.wrong-secret",
        f"Basic {token}",
        f"Bearer {OPERATOR_TOKEN}x",
    ):
        headers = {} if header is None else {"Authorization": header}
        resp = await api.client.post("/v1/alerts", json=threat_alert(), headers=headers)
        assert resp.status == 401, header
        assert (await resp.json())["error"] == "unauthenticated"


async def test_operator_cannot_be_revoked(api: Api) -> None:
    """The bootstrap operator is not revocable through the API (it lives in the environment)."""
    resp = await api.client.delete("/v1/nodes/operator", headers=api.auth("operator"))
    assert resp.status == 409

"""Tokens and webhook secrets: compared in constant time, stored in Redis only as digests (the
webhook secret, which the hub needs in clear to sign, in the one subscriptions hash and nowhere
else), and never written to the logs, even at debug level with every logger of the process.

tests/test_nodes.py checks that a node token's secret part is not in Redis hashes and strings
after one node is added; tests/test_logs.py that captured hub events carry no token. Here: every
key of every type, after nodes, revocations, token replacement, webhooks and deliveries; and the
whole log output of a real hub process at debug level."""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web
from redis.asyncio import Redis as AsyncRedis

from hub.logs import scrub_secrets
from hub.nodes import NodeRegistry
from hub.store.embedded import free_port
from hub.store.keys import Keys
from hub.store.scripts import Scripts
from tests.conftest import OPERATOR_TOKEN, Api, unique_threat
from tests.delivery.test_webhooks import wait_status
from tests.hubproc import HubProcess
from tests.receivers import Receiver
from tests.security.tally import refused

HUB = Path(__file__).resolve().parents[2] / "hub"
SECRET_WORDS = re.compile(r"secret|token|signature|digest|password|hash|mac\b|tag\b", re.IGNORECASE)


def _names(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.Subscript):
        yield from _names(node.value)
    elif isinstance(node, ast.Call):  # hash_secret(secret) == stored
        yield from _names(node.func)


def test_no_secret_is_compared_with_equals() -> None:
    """No hub module compares a token, secret, signature, digest or MAC with == or != (which
    returns at the first differing byte): those go through hmac.compare_digest."""
    found = []
    for path in sorted(HUB.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value is None for o in operands):
                continue
            names = [n for o in operands for n in _names(o) if SECRET_WORDS.search(n)]
            if names:
                found.append(f"{path.name}:{node.lineno} compares {names}")
    assert not found, "\n".join(found)


def every_stored_byte(client: redis.Redis) -> Iterator[tuple[bytes, bytes]]:
    """(key, piece) for every key name, and every value, field, member and stream entry."""
    for key in client.scan_iter(count=1000):
        yield key, key
        kind = client.type(key)
        if kind == b"string":
            yield key, client.get(key) or b""
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                yield key, field
                yield key, value
        elif kind == b"list":
            for value in client.lrange(key, 0, -1):
                yield key, value
        elif kind == b"set":
            for value in client.smembers(key):
                yield key, value
        elif kind == b"zset":
            for value, _ in client.zrange(key, 0, -1, withscores=True):
                yield key, value
        elif kind == b"stream":
            for entry_id, fields in client.xrange(key):
                yield key, entry_id
                for field, value in fields.items():
                    yield key, field + b"=" + value
        else:
            raise AssertionError(f"key {key!r} of type {kind!r} is not scanned")


async def test_redis_holds_no_token_and_the_webhook_secret_once(
    dapi: Api, redis_url: str, receivers: list[Receiver]
) -> None:
    """After nodes are added, used, revoked and one given a new token, webhooks subscribed,
    verified and delivered to: no key, value, field, member or stream entry holds any token,
    a token's secret part or the bootstrap token; each webhook secret is in the subscriptions
    hash (it must be, to sign) and nowhere else."""
    tokens = [await dapi.add_node("al-cert", "AL"), await dapi.add_node("me-cert", "ME")]
    tokens.append(await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",)))
    secrets_: list[str] = []
    for node in ("me-cert", "fc-ba"):
        receiver = await Receiver().start()
        receivers.append(receiver)
        created = await dapi.subscribe(node, {"type": "webhook", "url": receiver.url})
        secrets_.append(created["secret"])
        await wait_status(dapi, node, created["id"], "active")
    await dapi.subscribe("fc-ba")
    for i in range(3):
        await dapi.post("al-cert", unique_threat(f"t-{i}"))
    for receiver in receivers:
        await receiver.wait_for(lambda r: len(r.deliveries) == 3)
    # A node's token replaced (the demo does this), and a node revoked.
    client = redis.Redis.from_url(redis_url)
    async_client = AsyncRedis.from_url(redis_url)
    try:
        scripts = Scripts.register(async_client)
        replaced = await NodeRegistry(async_client, Keys(), scripts).replace_token("me-cert")
        assert replaced is not None
        tokens.append(replaced)
    finally:
        await async_client.aclose()
    assert (await dapi.client.delete("/v1/nodes/al-cert", headers=dapi.auth("operator"))).ok
    assert (await dapi.get("al-cert", "/v1/alerts"))[0] == 401
    refused("auth: unauthenticated")

    needles = {"bootstrap token": OPERATOR_TOKEN.encode()}
    for n, token in enumerate(tokens):
        needles[f"token {n}"] = token.encode()
        needles[f"secret part of token {n}"] = token.split(".", 1)[1].encode()
    holders: dict[str, set[bytes]] = {s: set() for s in secrets_}
    try:
        pieces = 0
        for key, piece in every_stored_byte(client):
            pieces += 1
            for what, needle in needles.items():
                assert needle not in piece, f"{what} is stored in {key!r}"
            for secret in secrets_:
                if secret.removeprefix("whsec_").encode() in piece:
                    holders[secret].add(key)
        assert pieces > 50  # the scan did look at a populated store
    finally:
        client.close()
    subscriptions = Keys().subscriptions.encode()
    assert all(keys == {subscriptions} for keys in holders.values()), holders


# -- logs of a real hub process at debug level -------------------------------------------------


class Hooks:
    """A webhook endpoint in this process: echoes challenges, fails the first event with 500."""

    def __init__(self) -> None:
        self.port = free_port()
        self.events: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None

    async def start(self) -> Hooks:
        async def handle(request: web.Request) -> web.Response:
            data = await request.json()
            if data.get("type") == "hub.verification":
                return web.json_response({"challenge": data["challenge"]})
            self.events.append(data)
            return web.Response(status=500 if len(self.events) == 1 else 200)

        app = web.Application()
        app.router.add_post("/hook", handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self


@pytest.mark.timeout(60)
async def test_debug_logs_of_a_real_hub_hold_no_secret(redis_url: str, tmp_path: Path) -> None:
    """A hub process at ALERTHUB_LOG_LEVEL=debug goes through node creation, posts, refused
    tokens (wrong secret, wrong scheme, a token in the query string), a webhook subscription
    with its secret, a failed and a retried delivery, a revoked token; its whole output (hub
    events, aiohttp and redis loggers) names no token, no bootstrap token, no webhook secret,
    and no Authorization header."""
    hooks = await Hooks().start()
    hub = HubProcess(
        env={
            "ALERTHUB_REDIS_URL": redis_url,
            "ALERTHUB_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
            "ALERTHUB_LOG_LEVEL": "debug",
            "ALERTHUB_ALLOW_PRIVATE_WEBHOOKS": "true",
            "ALERTHUB_RETRY_SCHEDULE": "0,0.2,0.2",
        },
        cwd=tmp_path,
    ).start()
    base = hub.base_url
    secrets_: list[str] = []
    tokens: dict[str, str] = {}
    try:
        async with aiohttp.ClientSession() as http:

            def auth(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            for node, kind, roles in (("al-cert", "government", ["publish", "subscribe"]),
                                      ("fc-ba", "civil-society", ["subscribe"])):  # fmt: skip
                body = {"id": node, "name": node, "country": "AL", "kind": kind, "roles": roles}
                async with http.post(
                    f"{base}/v1/nodes", json=body, headers=auth(OPERATOR_TOKEN)
                ) as r:
                    assert r.status == 201
                    tokens[node] = (await r.json())["token"]
            al, fc = tokens["al-cert"], tokens["fc-ba"]
            url = f"http://127.0.0.1:{hooks.port}/hook"
            body = {"delivery": {"type": "webhook", "url": url}}
            async with http.post(f"{base}/v1/subscriptions", json=body, headers=auth(fc)) as r:
                created = await r.json()
                secrets_.append(created["secret"])
            for _ in range(200):
                async with http.get(
                    f"{base}/v1/subscriptions/{created['id']}", headers=auth(fc)
                ) as r:
                    if (await r.json())["status"] == "active":
                        break
                await asyncio.sleep(0.05)
            for i in range(2):
                async with http.post(
                    f"{base}/v1/alerts", json=unique_threat(f"t-{i}"), headers=auth(al)
                ) as r:
                    assert r.status == 201
            async with http.post(f"{base}/v1/alerts", json={"id": "bad"}, headers=auth(al)) as r:
                assert r.status == 422
            key_id = al.split(".", 1)[0]
            bad = [
                {"Authorization": f"Bearer {key_id}.wrong{al.split('.', 1)[1]}"},
                {"Authorization": f"Basic {al}"},
                {"Authorization": f"Bearer {OPERATOR_TOKEN}x"},
                {"Authorization": al},
                {"X-Api-Key": fc, "Authorization": f"Token {fc}"},
            ]
            for headers in bad:
                async with http.get(f"{base}/v1/alerts", headers=headers) as r:
                    refused("secrets: bad token")
                    assert r.status == 401
            async with http.get(f"{base}/v1/alerts?access_token={fc}") as r:
                refused("secrets: bad token")
                assert r.status == 401
            # A client that puts a token in the path (a wrong base URL, say): the path is
            # logged, the token must not be.
            for path in (f"/v1/nothing/{al}", f"/v1/nothing/{OPERATOR_TOKEN}", f"/{fc}/v1/alerts"):
                async with http.get(f"{base}{path}", headers=auth(al)) as r:
                    refused("secrets: bad token")
                    assert r.status == 404
            # An Authorization header over aiohttp's 8 KB limit: aiohttp logs the start of it.
            reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
            writer.write(
                f"GET /v1/alerts HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {fc}".encode()
                + b"x" * 9000
                + b"\r\n\r\n"
            )
            await writer.drain()
            refused("secrets: bad token")
            assert b" 400 " in await reader.readline()
            writer.close()
            for _ in range(200):  # the first event failed once, then was delivered
                if len(hooks.events) >= 3:
                    break
                await asyncio.sleep(0.05)
            assert len(hooks.events) >= 3
            async with http.delete(f"{base}/v1/nodes/al-cert", headers=auth(OPERATOR_TOKEN)) as r:
                assert r.status == 204
            async with http.post(
                f"{base}/v1/alerts", json=unique_threat("late"), headers=auth(al)
            ) as r:
                refused("secrets: revoked token")
                assert r.status == 401
    finally:
        hub.stop()
        assert hooks.runner is not None
        await hooks.runner.cleanup()
    output = hub.output()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(lines) > 20 and any(line.get("level") == "debug" for line in lines)
    assert any(line.get("event") == "webhook_verified" for line in lines)
    needles = {"bootstrap token": OPERATOR_TOKEN}
    for node, token in tokens.items():
        needles[f"{node}'s token"] = token
        needles[f"{node}'s token secret"] = token.split(".", 1)[1]
    for secret in secrets_:
        needles["webhook secret"] = secret.removeprefix("whsec_")
    for what, needle in needles.items():
        assert needle not in output, f"the {what} is in the hub's log"
    quoted = re.findall(r"(?i)\b(?:bearer|basic)\s+([^\s'\"]+)", output)
    assert quoted and set(quoted) == {"***"}, f"an Authorization value is in the log: {quoted}"
    for line in lines:
        for key, value in line.items():
            if key.lower() in ("authorization", "token", "secret"):
                assert value == "***", line


def test_scrub_masks_secrets_inside_any_text() -> None:
    """The log processor masks a token's secret part (keeping its key id), webhook secrets,
    Authorization values and configured literal secrets, in nested values too."""
    token = "ah_0123456789abcdef.s3cr3t-Value_1"
    event = {
        "event": "request_finished",
        "path": f"/v1/nothing/{token}",
        "exception": [{"exc_value": f"Got more than 8190 bytes: b'Bearer {token}xxxx...'"}],
        "note": ("whsec_MTIzNDU2Nzg5MDEy+/=", "Basic dXNlcjpwYXNz"),
        "count": 3,
    }
    out = scrub_secrets(None, "info", event)
    text = json.dumps(out)
    assert "s3cr3t" not in text and "MTIzNDU2" not in text and "dXNlcjpw" not in text
    assert out["path"] == "/v1/nothing/ah_0123456789abcdef.***"
    assert out["exception"][0]["exc_value"] == "Got more than 8190 bytes: b'Bearer ***'"
    assert out["note"] == ["whsec_***", "Basic ***"] and out["count"] == 3

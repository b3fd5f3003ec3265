"""Limits a hostile or broken client meets: the per-node rate on every authenticated route and
across hub processes, body size (and objects that give a key twice) on every route that takes a
body, the per-alert size inside a batch, header size and count, and the number of Server-Sent
Events streams a node may hold open (across processes, freed when a stream closes, when its
client vanishes, and when its hub process dies).

tests/test_rate_limit.py already shows the 429 on POST /v1/alerts and that a batch counts each
alert; tests/test_bad_input.py the 413 of an alert and of a batch; tests/test_alerts.py the 422
of a batch over 500 alerts."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from hub.app import create_app
from hub.delivery.sse_slots import lease_ttl_s
from hub.ingest.validation import SchemaSet
from hub.settings import Settings, SettingsError
from hub.store.embedded import free_port, start_redis_server
from hub.store.keys import Keys
from tests.conftest import OPERATOR_TOKEN, Api, unique_threat
from tests.hubproc import HubProcess
from tests.security.routes import served_routes
from tests.security.tally import refused
from tests.security.test_route_auth import ACCESS, NODE_IDS, World

pytestmark = pytest.mark.timeout(60)


def assert_error(status: int, body: dict[str, Any], expected: int, code: str) -> None:
    if "error_code" in body:  # a TAXII error message (the /taxii2/ routes): same code, status
        assert body["http_status"] == str(status), body
        body = {"error": body["error_code"], "message": body["description"]}
    assert status == expected and body["error"] == code and body["message"], (status, body)


async def clear_of_minute_edge() -> None:
    """Rate counters are per clock minute: start a counted run clear of the minute's end."""
    left = 60 - time.time() % 60
    if left < 3:
        await asyncio.sleep(left + 0.1)


# -- the per-node rate -------------------------------------------------------------------------


async def test_the_rate_is_shared_by_hub_processes(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet
) -> None:
    """Two hub processes on one Redis count one node's requests together: the request past the
    limit is 429 on whichever process it reaches."""
    limited = dataclasses.replace(settings, rate_limit_per_minute=6)
    one = Api(await aiohttp_client(create_app(limited, schema_set)))
    two = Api(await aiohttp_client(create_app(limited, schema_set)))
    await one.add_node("al-cert", "AL")
    two.tokens["al-cert"] = one.tokens["al-cert"]
    await clear_of_minute_edge()
    statuses = []
    for i in range(6):
        status, _ = await (one, two)[i % 2].post("al-cert", unique_threat(f"t-{i}"))
        statuses.append(status)
    assert statuses == [201] * 6
    for api in (one, two):
        resp = await api.client.get("/v1/alerts", headers=api.auth("al-cert"))
        refused("limit: rate")
        assert_error(resp.status, await resp.json(content_type=None), 429, "rate_limited")
        assert 1 <= int(resp.headers["Retry-After"]) <= 60


def counted_routes() -> list[tuple[str, str]]:
    return [(m, p) for m, p in served_routes() if ACCESS[(m, p)][0].who != "public"]


@pytest.mark.parametrize(
    ("method", "pattern"), counted_routes(), ids=[f"{m} {p}" for m, p in counted_routes()]
)
async def test_every_authenticated_route_refuses_a_node_over_its_rate(
    api: Api, redis_url: str, method: str, pattern: str
) -> None:
    """A node at its rate gets 429 with Retry-After on every route that needs a token (SSE,
    pull, subscriptions and operator routes included), before anything else is done."""
    rule, make = ACCESS[(method, pattern)]
    caller = "operator_node" if rule.who == "role:operator" else "owner"
    world = await World.build(api)
    client = redis.Redis.from_url(redis_url)
    minute = int(time.time() // 60)
    rate_keys = [Keys().rate(NODE_IDS[caller], m) for m in (minute, minute + 1)]
    params, body = await make(world)  # before the counter is full: making them counts too
    try:
        for key in rate_keys:  # both minutes, so a minute turning over mid-test changes nothing
            client.set(key, 100_000, ex=120)
        resp = await world.api.client.request(
            method, pattern.format(**params), json=body, headers=world.headers[caller]
        )
        refused("limit: rate")
        assert_error(resp.status, await resp.json(content_type=None), 429, "rate_limited")
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    finally:
        client.close()


# -- body size ---------------------------------------------------------------------------------


def body_routes() -> list[tuple[str, str]]:
    return [(m, p) for m, p in served_routes() if m in ("POST", "PATCH", "PUT")]


@pytest.mark.parametrize(
    ("method", "pattern"), body_routes(), ids=[f"{m} {p}" for m, p in body_routes()]
)
async def test_every_body_route_refuses_an_oversize_body(
    api: Api, method: str, pattern: str
) -> None:
    """Every route that takes a body answers 413 payload_too_large to a body over its limit,
    with a Content-Length or streamed without one, and the caller's next request works."""
    rule, make = ACCESS[(method, pattern)]
    caller = "operator" if rule.who == "role:operator" else "owner"
    world = await World.build(api)
    limit = 4 * 1024 * 1024 if pattern in ("/v1/alerts/batch", "/v1/imports/misp") else 262_144
    padding = b"x" * (limit + 1024)
    body = b'{"padding": "' + padding + b'"}'

    async def streamed() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    for data in (io.BytesIO(body), streamed()):
        params, _ = await make(world)
        resp = await api.client.request(
            method,
            pattern.format(**params),
            data=data,
            headers={**world.headers[caller], "Content-Type": "application/json"},
        )
        refused("limit: body size")
        assert_error(resp.status, await resp.json(), 413, "payload_too_large")
    resp = await api.client.get("/v1/subscriptions", headers=world.headers[caller])
    assert resp.status == 200


async def test_an_alert_over_the_limit_is_refused_inside_a_batch(api: Api) -> None:
    """An alert over the per-alert limit gets no further inside a batch than it would alone:
    that item is payload_too_large, its neighbour is stored."""
    await api.add_node("al-cert", "AL")
    oversize = {**unique_threat("t-big"), "summary": "x" * 262_144}
    resp = await api.client.post(
        "/v1/alerts/batch",
        json={"alerts": [unique_threat("t-1"), oversize]},
        headers=api.auth("al-cert"),
    )
    assert resp.status == 200
    results = (await resp.json())["results"]
    refused("limit: body size")
    assert results[0]["status"] == "created"
    assert results[1]["status"] == "rejected"
    assert results[1]["error"]["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("method", "pattern"), body_routes(), ids=[f"{m} {p}" for m, p in body_routes()]
)
async def test_every_body_route_refuses_a_key_given_twice(
    api: Api, method: str, pattern: str
) -> None:
    """Every route that takes a body answers 400 malformed_json, naming the key, to an object
    that gives a key twice (`"tlp": "RED", "tlp": "GREEN"` would otherwise read as GREEN),
    nested or not."""
    rule, make = ACCESS[(method, pattern)]
    caller = "operator" if rule.who == "role:operator" else "owner"
    world = await World.build(api)
    for body in (b'{"tlp": "RED", "tlp": "GREEN"}', b'{"share": {"tlp": "RED", "tlp": "GREEN"}}'):
        params, _ = await make(world)
        resp = await api.client.request(
            method,
            pattern.format(**params),
            data=body,
            headers={**world.headers[caller], "Content-Type": "application/json"},
        )
        refused("malformed: a key given twice")
        answer = await resp.json()
        assert_error(resp.status, answer, 400, "malformed_json")
        assert '"tlp"' in answer["message"]


async def raw_request(port: int, data: bytes, within: float = 5.0) -> bytes:
    """Send raw bytes to the server and read one answer: its head and Content-Length body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(within):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return head + await reader.readexactly(length)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_a_huge_declared_length_is_refused_unread(api: Api) -> None:
    """A Content-Length of a terabyte is a 413 at once: the hub does not wait for the body."""
    await api.add_node("al-cert", "AL")
    head = (
        "POST /v1/alerts HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {api.tokens['al-cert']}\r\nContent-Length: 1000000000000\r\n\r\n"
    )
    answer = await raw_request(api.client.server.port, head.encode())
    refused("limit: body size")
    assert status_of(answer) == 413 and b'"payload_too_large"' in answer


# -- headers -----------------------------------------------------------------------------------

HEADER_CASES = {
    "one 20 KB header": b"X-Pad: " + b"a" * 20_000 + b"\r\n",
    "a 20 KB Authorization header": b"Authorization: Bearer " + b"a" * 20_000 + b"\r\n",
    "200 headers": b"".join(b"X-H%d: v\r\n" % i for i in range(200)),
    "a 20 KB header name": b"X-" + b"n" * 20_000 + b": v\r\n",
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
async def test_oversize_headers_get_a_short_400(api: Api, case: str) -> None:
    """A header over 8 KB, or more than 128 headers, is answered 400 with one plain sentence
    (aiohttp answers before any handler runs) and no traceback; the hub goes on serving."""
    port = api.client.server.port
    request = b"GET /v1/alerts HTTP/1.1\r\nHost: hub\r\n" + HEADER_CASES[case] + b"\r\n"
    answer = await raw_request(port, request)
    refused("limit: headers")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 400, answer[:300]
    assert b"text/plain" in head and b"Traceback" not in answer and len(body) < 300, answer
    assert body.startswith((b"Got more than 8190 bytes", b"Too many headers")), body
    assert (await api.client.get("/healthz")).status == 200


async def test_a_20_kb_request_line_gets_a_short_400(api: Api) -> None:
    """A request line over 8 KB (a huge query string) is a 400, not a 500."""
    answer = await raw_request(
        api.client.server.port, b"GET /v1/alerts?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    refused("limit: headers")
    assert status_of(answer) == 400 and b"Traceback" not in answer


async def test_headers_within_the_bounds_are_answered_normally(api: Api) -> None:
    """The most the server reads of one request's head is bounded (128 headers of 8 KB): such a
    request still gets the hub's own answer (here a 401 for no token)."""
    pad = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 8000) for i in range(100))
    answer = await raw_request(
        api.client.server.port,
        b"GET /v1/alerts HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" + pad + b"\r\n",
    )
    refused("auth: unauthenticated")
    assert status_of(answer) == 401 and b'"unauthenticated"' in answer


# -- Server-Sent Events streams per node -------------------------------------------------------


async def open_stream(api: Api, node: str, sub_id: str) -> aiohttp.ClientResponse:
    return await api.client.get(
        f"/v1/subscriptions/{sub_id}/events",
        headers={**api.auth(node), "Accept": "text/event-stream"},
    )


async def until_opened(api: Api, node: str, sub_id: str, within: float) -> aiohttp.ClientResponse:
    """Open a stream, retrying while the answer is 429, for at most `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        resp = await open_stream(api, node, sub_id)
        if resp.status == 200 or time.monotonic() > deadline:
            assert resp.status == 200, await resp.text()
            return resp
        refused("limit: SSE streams (polled until a slot frees)")
        assert resp.status == 429
        resp.close()
        await asyncio.sleep(0.05)


def test_the_sse_limit_is_a_setting() -> None:
    """ALERTHUB_MAX_SSE_PER_NODE sets the limit (default 20); below 1 is refused at start."""
    assert Settings.from_env({}).max_sse_per_node == 20
    assert Settings.from_env({"ALERTHUB_MAX_SSE_PER_NODE": "5"}).max_sse_per_node == 5
    with pytest.raises(SettingsError, match="ALERTHUB_MAX_SSE_PER_NODE"):
        Settings.from_env({"ALERTHUB_MAX_SSE_PER_NODE": "0"})


@pytest.fixture
def sse_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, max_sse_per_node=3, sse_heartbeat_s=0.3)


async def test_sse_streams_per_node_are_limited_across_processes(
    aiohttp_client: Any, sse_settings: Settings, schema_set: SchemaSet
) -> None:
    """A node may hold ALERTHUB_MAX_SSE_PER_NODE streams open over all hub processes; one more
    is 429 rate_limited with Retry-After; another node is not affected."""
    one = Api(await aiohttp_client(create_app(sse_settings, schema_set)))
    two = Api(await aiohttp_client(create_app(sse_settings, schema_set)))
    await one.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    await one.add_node("fc-rs", "RS", kind="civil-society", roles=("subscribe",))
    two.tokens.update(one.tokens)
    sub = (await one.subscribe("fc-ba"))["id"]
    other = (await one.subscribe("fc-rs"))["id"]
    streams = [await open_stream(api, "fc-ba", sub) for api in (one, two, one)]
    assert [s.status for s in streams] == [200, 200, 200]
    for api in (one, two):
        resp = await open_stream(api, "fc-ba", sub)
        refused("limit: SSE streams")
        assert resp.status == 429, "a stream past the node's limit was opened"
        assert_error(resp.status, await resp.json(), 429, "rate_limited")
        assert int(resp.headers["Retry-After"]) >= 1
    assert (await open_stream(two, "fc-rs", other)).status == 200
    # The operator watching the partner's feed uses the operator's slots, not the partner's.
    assert (await open_stream(one, "operator", sub)).status == 200
    for stream in streams:
        stream.close()


async def test_a_closed_or_vanished_stream_frees_its_slot(
    aiohttp_client: Any, sse_settings: Settings, schema_set: SchemaSet
) -> None:
    """A client that goes away (its connection simply closes) gives its slot back once the hub
    notices, at the stream's next heartbeat at the latest."""
    api = Api(await aiohttp_client(create_app(sse_settings, schema_set)))
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    sub = (await api.subscribe("fc-ba"))["id"]
    streams = [await open_stream(api, "fc-ba", sub) for _ in range(3)]
    assert {s.status for s in streams} == {200}
    streams.pop().close()  # the client vanishes: no goodbye, the TCP connection just closes
    replacement = await until_opened(api, "fc-ba", sub, within=3 * sse_settings.sse_heartbeat_s)
    resp = await open_stream(api, "fc-ba", sub)
    refused("limit: SSE streams")
    assert resp.status == 429
    for stream in (*streams, replacement):
        stream.close()


@pytest.mark.timeout(90)
async def test_slots_of_a_killed_hub_process_lapse(
    aiohttp_client: Any, sse_settings: Settings, schema_set: SchemaSet, tmp_path: Path
) -> None:
    """Streams held by a hub process killed with SIGKILL keep their slots only until their
    leases lapse (3 heartbeats and a second); then the node may open streams again."""
    api = Api(await aiohttp_client(create_app(sse_settings, schema_set)))
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    sub = (await api.subscribe("fc-ba"))["id"]
    heartbeat_s = 0.5
    env = {
        "ALERTHUB_REDIS_URL": sse_settings.redis_url or "",
        "ALERTHUB_MAX_SSE_PER_NODE": "3",
        "ALERTHUB_SSE_HEARTBEAT_S": str(heartbeat_s),
        "ALERTHUB_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
    }
    hub = HubProcess(env=env, cwd=tmp_path).start()
    session = aiohttp.ClientSession()
    try:
        for _ in range(3):
            resp = await session.get(
                f"{hub.base_url}/v1/subscriptions/{sub}/events", headers=api.auth("fc-ba")
            )
            assert resp.status == 200
        resp = await open_stream(api, "fc-ba", sub)
        refused("limit: SSE streams")
        assert resp.status == 429
        assert hub.process is not None
        hub.process.send_signal(signal.SIGKILL)
        hub.process.wait(timeout=10)
        # Right after the kill the dead process's streams still hold their slots...
        resp = await open_stream(api, "fc-ba", sub)
        refused("limit: SSE streams")
        assert resp.status == 429
        # ...until their leases lapse.
        stream = await until_opened(api, "fc-ba", sub, within=lease_ttl_s(heartbeat_s) + 3)
        stream.close()
    finally:
        await session.close()
        if hub.process is not None and hub.process.poll() is None:
            hub.stop()


async def test_streams_open_while_redis_refuses_writes(
    aiohttp_client: Any, sse_settings: Settings, schema_set: SchemaSet, tmp_path: Path
) -> None:
    """At maxmemory (noeviction) a stream's lease cannot be written: the stream still opens
    (checked against the streams counted so far), so partners read alerts while Redis is full."""
    server = start_redis_server(tmp_path / "redis", port=free_port())
    try:
        # One fan-out shard: 64 open connections as the hub starts whose buffers Redis frees
        # over the next seconds, which could make room under a limit set at the memory in use.
        own = dataclasses.replace(sse_settings, redis_url=server.url, fanout_shards=1)
        api = Api(await aiohttp_client(create_app(own, schema_set)))
        await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
        sub = (await api.subscribe("fc-ba"))["id"]
        client = redis.Redis.from_url(server.url)
        try:
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", client.info("memory")["used_memory"])
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                client.set("filler", "x" * 100_000)
            stream = await open_stream(api, "fc-ba", sub)
            assert stream.status == 200, await stream.text()
            stream.close()
        finally:
            client.config_set("maxmemory", 0)
            client.close()
    finally:
        server.stop()

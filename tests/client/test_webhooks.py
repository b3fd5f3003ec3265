"""alerthub_client.webhooks: verify_webhook refuses every forgery and stale or future delivery,
and WebhookReceiver, served on loopback, takes a real hub's deliveries end to end: challenge,
signed events in order, repeats dropped, forgeries refused, a failed handler retried."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alerthub_client.webhooks import (
    WebhookError,
    WebhookReceiver,
    sign_webhook,
    verify_webhook,
)
from hub.delivery.signing import new_secret, webhook_headers
from tests.conftest import Api, unique_threat
from tests.delivery.test_webhooks import wait_status

# The test vector published with the Standard Webhooks specification's reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_HEADERS = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}
SPEC_BODY = b'{"test": 2432232314}'
SPEC_NOW = 1614265330

SECRET = new_secret()
OTHER = new_secret()
NOW = 1_700_000_000
BODY = b'{"id":"evt_1","type":"alert.created","hub_id":"h1"}'


def signed(
    body: bytes = BODY, secret: str = SECRET, msg_id: str = "evt_1", ts: int = NOW
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_webhook(secret, msg_id, ts, body),
    }


def refused(reason: str, headers: dict[str, str], body: bytes = BODY, **kw: Any) -> str:
    with pytest.raises(WebhookError) as caught:
        verify_webhook(SECRET if "secret" not in kw else kw.pop("secret"), headers, body,
                       now=kw.pop("now", NOW), **kw)  # fmt: skip
    assert caught.value.reason == reason
    return str(caught.value)


# ---- verify_webhook, no server -------------------------------------------------------------


def test_spec_vector_verifies_and_returns_the_event() -> None:
    """The specification's published delivery verifies, prefix or not, and yields its JSON."""
    assert verify_webhook(SPEC_SECRET, SPEC_HEADERS, SPEC_BODY, now=SPEC_NOW) == {
        "test": 2432232314
    }
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert verify_webhook(bare, SPEC_HEADERS, SPEC_BODY, now=SPEC_NOW)["test"] == 2432232314


def test_a_good_delivery_returns_the_event() -> None:
    """A delivery signed with the secret, within the tolerance, gives back the parsed event."""
    event = verify_webhook(SECRET, signed(), BODY, now=NOW + 299)
    assert event == {"id": "evt_1", "type": "alert.created", "hub_id": "h1"}


def test_tampered_body_is_refused() -> None:
    """One changed byte of the body fails the signature."""
    assert "no v1 signature" in refused("bad_signature", signed(), BODY.replace(b"h1", b"h2"))


def test_tampered_id_or_timestamp_is_refused() -> None:
    """The id and the timestamp are signed: changing either fails the signature."""
    refused("bad_signature", {**signed(), "webhook-id": "evt_2"})
    refused("bad_signature", {**signed(), "webhook-timestamp": str(NOW - 1)})


def test_stale_and_future_deliveries_are_refused_even_when_signed() -> None:
    """A correctly signed delivery older, or further ahead, than the tolerance is refused."""
    assert "301 s old" in refused("stale", signed(ts=NOW - 301))
    assert "in the future" in refused("stale", signed(ts=NOW + 301))
    refused("stale", signed(ts=NOW - 11), tolerance_s=10)


def test_wrong_secret_is_refused() -> None:
    """A delivery signed with another subscription's secret is refused."""
    refused("bad_signature", signed(secret=OTHER))


def test_one_valid_signature_among_several_suffices() -> None:
    """During a key rotation the header holds several entries: any one matching is enough,
    and entries of other versions are ignored."""
    good = signed()["webhook-signature"]
    other = signed(secret=OTHER)["webhook-signature"]
    digest = good.removeprefix("v1,")
    for value in (f"{other} {good}", f"{good} {other}", f"v2,{digest} {good}"):
        verify_webhook(SECRET, {**signed(), "webhook-signature": value}, BODY, now=NOW)
    refused("bad_signature", {**signed(), "webhook-signature": f"{other} v2,{digest}"})


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_refused_by_name(name: str) -> None:
    """A delivery without one of the three headers, or with it empty, names the header."""
    without = {k: v for k, v in signed().items() if k != name}
    assert name in refused("missing_header", without)
    assert name in refused("missing_header", {**signed(), name: ""})


def test_header_names_are_case_insensitive_in_a_plain_dict() -> None:
    """Frameworks spell header names differently: a plain dict in any case still verifies."""
    titled = {k.title(): v for k, v in signed().items()}
    assert verify_webhook(SECRET, titled, BODY, now=NOW)["id"] == "evt_1"


@pytest.mark.parametrize("ts", ["soon", "1.7e9", "-1", "9" * 40])
def test_timestamp_that_is_not_whole_seconds_is_refused(ts: str) -> None:
    """A webhook-timestamp that is not plain digits is refused before any arithmetic."""
    refused("bad_timestamp", {**signed(), "webhook-timestamp": ts})


@pytest.mark.parametrize("bad", ["whsec_not base64!", "whsec_abc", "whsec_é", "", "whsec_"])
def test_secret_that_is_not_base64_is_refused(bad: str) -> None:
    """A secret that is not base64 (or empty) is a WebhookError (a ValueError), not a crash,
    and a receiver refuses it when built rather than on every delivery."""
    refused("bad_secret", signed(), secret=bad)
    with pytest.raises(ValueError, match="secret"):
        WebhookReceiver(bad, lambda event: None)


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_signed_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    """A correctly signed body that is not a JSON object is refused as not_json."""
    assert "not" in refused("not_json", signed(body), body)


def test_the_client_does_not_import_the_hub() -> None:
    """A partner installs the client without the hub: the module must import with hub absent."""
    code = "import sys; sys.modules['hub'] = None; import alerthub_client.webhooks"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# ---- WebhookReceiver through aiohttp's test client -------------------------------------------


@dataclass
class Handler:
    """on_event that records events, fails the first `fail` calls, and can be held."""

    fail: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    handled: list[dict[str, Any]] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def __call__(self, event: dict[str, Any]) -> None:
        self.calls.append(event)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("the handler broke")
        self.handled.append(event)


def delivery(msg_id: str, secret: str = SECRET, **extra: Any) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"id": msg_id, "type": "alert.created", **extra}).encode()
    return webhook_headers(secret, msg_id, int(time.time()), body), body


async def test_receiver_lru_keeps_recently_repeated_ids(aiohttp_client: Any) -> None:
    """The memory of ids is least-recently-used: a repeat refreshes an id, the oldest untouched
    one is forgotten first and reaches on_event again."""
    handler = Handler()
    receiver = WebhookReceiver(SECRET, handler, remember=2)
    client = await aiohttp_client(receiver.app())

    async def send(msg_id: str) -> int:
        headers, body = delivery(msg_id)
        return (await client.post("/", data=body, headers=headers)).status

    assert [await send(i) for i in ("e1", "e2", "e1", "e3")] == [204, 204, 200, 204]
    # Remembered now: e1 (refreshed) and e3; e2 was forgotten.
    assert [await send(i) for i in ("e1", "e3", "e2")] == [200, 200, 204]
    assert [e["id"] for e in handler.calls] == ["e1", "e2", "e3", "e2"]
    assert receiver.counts == {
        "received": 4, "duplicates": 3, "refused": 0, "failed": 0, "verifications": 0,
    }  # fmt: skip


async def test_receiver_refuses_forgeries_without_calling_on_event(aiohttp_client: Any) -> None:
    """Unsigned, wrongly signed and stale deliveries get 401, a signed non-JSON body 400, each
    with a short JSON reason; on_event never runs."""
    handler = Handler()
    receiver = WebhookReceiver(SECRET, handler)
    client = await aiohttp_client(receiver.app())
    headers, body = delivery("e1")
    stale_body = b'{"id":"e2"}'
    cases = [
        ({}, body, 401, "missing_header"),
        (delivery("e1", secret=OTHER)[0], body, 401, "bad_signature"),
        (headers, body + b" ", 401, "bad_signature"),
        (webhook_headers(SECRET, "e2", int(time.time()) - 400, stale_body), stale_body, 401,
         "stale"),
        (webhook_headers(SECRET, "e3", int(time.time()), b"oops"), b"oops", 400, "not_json"),
    ]  # fmt: skip
    for sent_headers, sent_body, status, reason in cases:
        resp = await client.post("/", data=sent_body, headers=sent_headers)
        assert resp.status == status
        answer = await resp.json()
        assert answer["error"] == reason and answer["message"]
    assert handler.calls == [] and receiver.refused == len(cases)


async def test_receiver_answers_a_signed_challenge_only(aiohttp_client: Any) -> None:
    """A signed hub.verification is answered 200 with its challenge and not passed on; an
    unsigned one is refused, so nobody but the hub can make the endpoint confirm."""
    handler = Handler()
    receiver = WebhookReceiver(SECRET, handler)
    client = await aiohttp_client(receiver.app())
    body = json.dumps({"type": "hub.verification", "id": "verify_1", "challenge": "c-42"}).encode()
    headers = webhook_headers(SECRET, "verify_1", int(time.time()), body)
    resp = await client.post("/", data=body, headers=headers)
    assert resp.status == 200 and "c-42" in await resp.text()
    forged = webhook_headers(OTHER, "verify_1", int(time.time()), body)
    resp = await client.post("/", data=body, headers=forged)
    assert resp.status == 401 and "c-42" not in await resp.text()
    assert handler.calls == [] and receiver.verifications == 1


async def test_receiver_failed_handler_is_500_and_the_retry_is_processed(
    aiohttp_client: Any,
) -> None:
    """When on_event raises, the answer is 500 and the id is not remembered: the retry of the
    same delivery reaches on_event again and is then acknowledged."""
    handler = Handler(fail=1)
    receiver = WebhookReceiver(SECRET, handler)
    client = await aiohttp_client(receiver.app())
    headers, body = delivery("e1")
    first = await client.post("/", data=body, headers=headers)
    assert first.status == 500 and (await first.json())["error"] == "on_event_failed"
    assert (await client.post("/", data=body, headers=headers)).status == 204
    assert (await client.post("/", data=body, headers=headers)).status == 200
    assert [e["id"] for e in handler.calls] == ["e1", "e1"]
    assert (receiver.failed, receiver.received, receiver.duplicates) == (1, 1, 1)


async def test_receiver_repeat_while_the_first_is_being_handled_is_sent_back(
    aiohttp_client: Any,
) -> None:
    """A copy arriving while the first is still in on_event gets 409 (the first may yet fail,
    so the hub must come back), and on_event is not run twice at once for one event."""
    handler = Handler(gate=asyncio.Event())
    receiver = WebhookReceiver(SECRET, handler)
    client = await aiohttp_client(receiver.app())
    headers, body = delivery("e1")
    first = asyncio.create_task(client.post("/", data=body, headers=headers))
    await wait_for(lambda: len(handler.calls) == 1)
    assert (await client.post("/", data=body, headers=headers)).status == 409
    handler.gate.set()
    assert (await first).status == 204
    assert len(handler.calls) == 1


async def test_receiver_takes_a_plain_function(aiohttp_client: Any) -> None:
    """on_event may be a plain function as well as a coroutine function."""
    seen: list[str] = []
    receiver = WebhookReceiver(SECRET, lambda event: seen.append(event["id"]))
    client = await aiohttp_client(receiver.app())
    headers, body = delivery("e1")
    assert (await client.post("/", data=body, headers=headers)).status == 204
    assert seen == ["e1"]


async def test_running_serves_on_a_free_port_and_stops() -> None:
    """running() binds a free loopback port, yields the URL to subscribe with, and closes it."""
    handler = Handler()
    receiver = WebhookReceiver(SECRET, handler, path="/in")
    headers, body = delivery("e1")
    async with receiver.running() as url, aiohttp.ClientSession() as session:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/in")
        async with session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 204
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.post(url, data=body, headers=headers)
    assert [e["id"] for e in handler.calls] == ["e1"]


def test_header_bytes_that_are_not_utf8_are_refused_not_raised() -> None:
    """aiohttp hands a header's non-UTF-8 bytes over as surrogates; verify_webhook refuses them
    with WebhookError like any other forgery (UnicodeEncodeError would make a receiver a 500)."""
    for name in ("webhook-id", "webhook-signature"):
        headers = {**signed(), name: "evt_\udcff"}
        assert "UTF-8" in refused("bad_signature", headers)


async def test_receiver_answers_401_to_header_bytes_that_are_not_utf8() -> None:
    """A raw request whose webhook-id holds a byte 0xff gets 401, not 500."""
    handler = Handler()
    receiver = WebhookReceiver(SECRET, handler)
    async with receiver.running() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\nwebhook-timestamp: {int(time.time())}\r\n"
            f"webhook-signature: {signed()['webhook-signature']}\r\nConnection: close\r\n"
        ).encode()
        writer.write(head + b"webhook-id: evt_\xff\r\n\r\n" + BODY)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b'"bad_signature"' in answer and handler.calls == []


# ---- end to end: a real hub delivering to a WebhookReceiver on loopback -----------------------


async def wait_for(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.02)


@dataclass
class Sent:
    headers: dict[str, str]
    body: bytes
    status: int


@contextlib.asynccontextmanager
async def serve(
    receiver: WebhookReceiver, record: list[Sent], ready: asyncio.Event
) -> AsyncIterator[str]:
    """receiver.app() on a free loopback port, recording each request exactly as it came and
    its answer. Requests wait for `ready`: the hub sends its challenge as soon as the
    subscription exists, before the test has the secret to give the receiver."""

    @web.middleware
    async def recording(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        await ready.wait()
        body = await request.read()  # cached: the receiver reads the same bytes
        response = await handler(request)
        record.append(Sent(dict(request.headers), body, response.status))
        return response

    app = receiver.app()
    app.middlewares.append(recording)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}{receiver.path}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def subscribed(
    api: Api, handler: Handler
) -> AsyncIterator[tuple[WebhookReceiver, list[Sent], str]]:
    """A WebhookReceiver on loopback, subscribed by me-cert to everything and verified by the
    hub's challenge; yields it and the record of what it was sent."""
    await api.add_node("al-cert", country="AL")
    await api.add_node("me-cert", country="ME")
    record: list[Sent] = []
    ready = asyncio.Event()
    receiver = WebhookReceiver(new_secret(), handler, path="/hook")
    async with serve(receiver, record, ready) as url:
        created = await api.subscribe("me-cert", {"type": "webhook", "url": url})
        assert created["status"] == "pending"
        receiver.secret = created["secret"]
        ready.set()
        await wait_status(api, "me-cert", created["id"], "active")
        yield receiver, record, url


async def post_alerts(api: Api, *ids: str) -> list[str]:
    hub_ids = []
    for alert_id in ids:
        status, answer = await api.post("al-cert", unique_threat(alert_id))
        assert status == 201, answer
        hub_ids.append(answer["hub_id"])
    return hub_ids


async def test_hub_delivers_verified_events_in_order_and_forgeries_are_refused(
    dapi: Api,
) -> None:
    """Against a real hub: the challenge activates the subscription without reaching on_event;
    alerts arrive verified and in order; a replayed delivery is acknowledged and dropped; a
    tampered body, a stale timestamp and a wrong secret get 401, a signed non-JSON body 400."""
    handler = Handler()
    async with subscribed(dapi, handler) as (receiver, record, url):
        assert [s.status for s in record] == [200]
        assert receiver.verifications == 1 and handler.calls == []

        hub_ids = await post_alerts(dapi, "wh-1", "wh-2", "wh-3")
        await wait_for(lambda: len(handler.handled) == 3)
        assert [e["hub_id"] for e in handler.handled] == hub_ids
        assert {e["type"] for e in handler.handled} == {"alert.created"}
        first = next(s for s in record if json.loads(s.body).get("hub_id") == hub_ids[0])
        assert first.status == 204 and first.headers["webhook-id"] == handler.handled[0]["id"]

        secret = receiver.secret
        now = int(time.time())
        msg_id = "forged_1"
        async with aiohttp.ClientSession() as session:

            async def send(headers: dict[str, str], body: bytes) -> tuple[int, str]:
                """The status and the refusal reason (the status word when acknowledged)."""
                async with session.post(url, data=body, headers=headers) as resp:
                    answer = await resp.json()
                    return resp.status, answer.get("error", answer.get("status"))

            assert await send(first.headers, first.body) == (200, "duplicate")
            tampered = first.body.replace(hub_ids[0].encode(), hub_ids[1].encode())
            assert await send(first.headers, tampered) == (401, "bad_signature")
            stale_headers = webhook_headers(secret, msg_id, now - 400, first.body)
            assert (await send(stale_headers, first.body)) == (401, "stale")
            wrong = webhook_headers(new_secret(), msg_id, now, first.body)
            assert (await send(wrong, first.body)) == (401, "bad_signature")
            junk = webhook_headers(secret, msg_id, now, b"<html>")
            assert (await send(junk, b"<html>")) == (400, "not_json")

        assert len(handler.calls) == 3
        assert (receiver.received, receiver.duplicates, receiver.refused) == (3, 1, 4)


async def test_hub_retries_an_event_whose_handler_failed(dapi: Api) -> None:
    """on_event failing once answers 500; the hub's retry brings the same event back and it is
    then handled once."""
    handler = Handler(fail=1)
    async with subscribed(dapi, handler) as (receiver, record, _):
        (hub_id,) = await post_alerts(dapi, "wh-retry")
        await wait_for(lambda: len(handler.handled) == 1)
        assert [e["hub_id"] for e in handler.calls] == [hub_id, hub_id]
        assert handler.calls[0]["id"] == handler.calls[1]["id"]
        assert [s.status for s in record] == [200, 500, 204]
        assert record[1].headers["webhook-id"] == record[2].headers["webhook-id"]
        assert (receiver.failed, receiver.received) == (1, 1)

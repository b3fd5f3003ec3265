"""Server-side request forgery, beyond tests/test_webhook_urls.py (which covers the private,
loopback, link-local, shared, unspecified, 6to4 and NAT64 ranges and every special-purpose block
of the IANA registries, the decimal, octal, hex and short IPv4 spellings, IPv4-mapped IPv6,
userinfo and resolver answers): the spellings it does not try, PATCH of a URL, the check made
again at delivery, redirects, which the hub must never follow, neither for the challenge nor for
events, and endpoints that reflect the challenge request instead of answering it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from hub.delivery.webhook_sender import WebhookSender
from hub.delivery.webhook_urls import UnsafeWebhookUrl, check_webhook_url
from hub.store.embedded import free_port
from tests.conftest import Api, threat_alert
from tests.delivery.test_webhook_urls import no_resolution, resolving_to
from tests.delivery.test_webhooks import wait_status
from tests.receivers import Receiver
from tests.security.tally import refused

REFUSED = [
    # IPv4-compatible (deprecated ::a.b.c.d) and NAT64 written with a dotted tail
    ("http://[::127.0.0.1]/hook", "embedding 127.0.0.1, a loopback address"),
    ("http://[64:ff9b::127.0.0.1]/hook", "IPv6 form of 127.0.0.1, a loopback address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "IPv6 form of 169.254.169.254, a link-local address"),
    ("http://[::ffff:169.254.169.254]/", "IPv6 form of 169.254.169.254, a link-local address"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "IPv6 form of 127.0.0.1, a loopback address"),
    ("http://[::ffff:0:127.0.0.1]/", "embedding 127.0.0.1, a loopback address"),  # SIIT
    ("http://[0:0:0:0:0:0:0:1]/", "is a loopback address"),
    ("http://[::]/", "is the unspecified address"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "embedding 127.0.0.1"),  # Teredo
    # special-purpose blocks Python's tables lag on (issue 15): 3.11 calls them global
    ("http://192.0.0.8/", "is an IETF protocol assignment (192.0.0.0/24)"),
    ("http://192.88.99.1/", "is a deprecated 6to4 relay anycast address"),
    ("http://[3fff::1]/", "is a documentation address"),
    ("http://[::ffff:192.88.99.1]/", "IPv6 form of 192.88.99.1, a deprecated 6to4 relay"),
    # more IPv4 spellings
    ("http://2852039166/latest/meta-data/", "is a link-local address"),  # 169.254.169.254
    ("http://127.000.000.001/", "is a loopback address"),
    ("http://0177.1/", "is a loopback address"),
    ("http://0x7f.0x0.0x0.0x1/", "is a loopback address"),
    ("http://0x00007f.1/", "is a loopback address"),
    ("http://0/", "is the unspecified address"),
    ("HTTP://127.0.0.1:8080", "is a loopback address"),
    # full-width digits and an ideographic full stop: IDNA maps them to 127.0.0.1
    ("http://１２７.０.０.１/", "is a loopback address"),
    ("http://127。0。0。1/", "is a loopback address"),
    # userinfo and fragment tricks: the host is what a URL parser says it is
    ("http://public@127.0.0.1/", "must not contain a user name or password"),
    ("http://93.184.216.34@127.0.0.1/", "must not contain a user name or password"),
    ("http://127.0.0.1#@93.184.216.34/", "host 127.0.0.1 is a loopback address"),
    ("http://1.1.1.1 &@127.0.0.1# @3.3.3.3/", "must not contain a user name or password"),
    ("http://127.0.0.1:80\\@93.184.216.34/", "is not a valid URL"),
    ("http://127.0.0.1%2f@93.184.216.34/", "must not contain a user name or password"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
async def test_more_spellings_are_refused(url: str, why: str) -> None:
    """Each further spelling of an internal address, or trick on the URL parser, is refused
    without a DNS lookup."""
    refused("ssrf: webhook URL")
    with pytest.raises(UnsafeWebhookUrl, match=re.escape(why)):
        await check_webhook_url(url, allow_private=False, resolve=no_resolution)


@pytest.mark.parametrize(
    ("url", "answer"),
    [
        ("http://localhost./hook", "127.0.0.1"),  # a trailing-dot name
        ("http://rebind.example./hook", "::ffff:127.0.0.1"),
        ("http://nat64.example/hook", "64:ff9b::a00:1"),
        ("http://zero.example/hook", "0.0.0.0"),
        ("http://metadata.example/hook", "169.254.169.254"),
        ("http://v6.example/hook", "fd00::1"),
        ("http://dummy.example/hook", "192.0.0.8"),
        ("http://relay.example/hook", "192.88.99.1"),
        ("http://docs.example/hook", "3fff::1"),
    ],
)
async def test_names_resolving_to_internal_forms_are_refused(url: str, answer: str) -> None:
    """A name (trailing dot or not) whose DNS answer is an internal address in any IPv6 or IPv4
    form is refused, naming the address."""
    refused("ssrf: webhook URL")
    _, resolve = resolving_to(answer)
    with pytest.raises(UnsafeWebhookUrl, match=f"resolves to {re.escape(answer)}"):
        await check_webhook_url(url, allow_private=False, resolve=resolve)


async def test_patch_to_a_private_url_is_refused(dapi: Api, api: Api) -> None:
    """PATCHing a webhook subscription's URL to an internal address is a 422 naming /url, and
    the subscription keeps its old URL. (The subscription is made through a second hub process
    on the same Redis that allows private URLs, so that no test request leaves the machine.)"""
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    api.tokens["fc-ba"] = dapi.tokens["fc-ba"]
    old_url = f"http://127.0.0.1:{free_port()}/hook"
    created = await dapi.subscribe("fc-ba", {"type": "webhook", "url": old_url})
    for url in ("http://127.0.0.1:6379/", "http://[::ffff:10.0.0.1]/", "http://0x7f.1/"):
        resp = await api.client.patch(
            f"/v1/subscriptions/{created['id']}", json={"url": url}, headers=api.auth("fc-ba")
        )
        refused("ssrf: PATCH URL")
        body = await resp.json()
        assert resp.status == 422 and body["details"][0]["pointer"] == "/url", body
        assert body["details"][0]["rule"] == "public_address"
    _, sub = await api.get("fc-ba", f"/v1/subscriptions/{created['id']}")
    assert sub["delivery"]["url"] == old_url


class Endpoints:
    """Two loopback servers: `redirector` answers POSTs with a redirect to `target`, which echoes
    anything (a challenge included) and records each hit. With `verify_first` the redirector
    itself answers the challenge, then redirects every event."""

    def __init__(self, status: int = 307, verify_first: bool = False) -> None:
        self.status = status
        self.verify_first = verify_first
        self.port, self.target_port = free_port(), free_port()
        self.redirected: list[bytes] = []
        self.target_hits: list[str] = []
        self._runners: list[web.AppRunner] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Endpoints:
        async def redirect(request: web.Request) -> web.Response:
            body = await request.read()
            data = orjson.loads(body) if body.startswith(b"{") else {}
            if self.verify_first and data.get("type") == "hub.verification":
                return web.json_response({"challenge": data["challenge"]})
            self.redirected.append(body)
            target = f"http://127.0.0.1:{self.target_port}/steal"
            return web.Response(status=self.status, headers={"Location": target})

        async def steal(request: web.Request) -> web.Response:
            self.target_hits.append(request.method)
            return web.Response(body=await request.read(), content_type="application/json")

        for port, handler in ((self.port, redirect), (self.target_port, steal)):
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self._runners.append(runner)
        return self

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


@pytest.fixture
async def endpoints(request: pytest.FixtureRequest) -> AsyncIterator[Endpoints]:
    started = await Endpoints(getattr(request, "param", 307)).start()
    yield started
    await started.stop()


@pytest.mark.parametrize("endpoints", [301, 302, 303, 307, 308], indirect=True)
async def test_sender_does_not_follow_redirects(endpoints: Endpoints) -> None:
    """A webhook POST answered with any redirect is a failed attempt with that status; the
    Location is never requested, even with private addresses allowed (so the first hop works)."""
    sender = WebhookSender(allow_private=True, timeout_s=2.0)
    try:
        attempt = await sender.post(endpoints.url, "whsec_c2VjcmV0c2VjcmV0", "msg_1", b"{}")
    finally:
        await sender.close()
    refused("ssrf: redirect")
    assert attempt.status == endpoints.status and not attempt.ok
    assert endpoints.redirected == [b"{}"]
    assert endpoints.target_hits == []


async def test_sender_checks_the_url_again_at_delivery() -> None:
    """With private webhooks refused, the sender itself refuses a loopback URL (IP literal or a
    name) at the moment of delivery, so a URL stored while they were allowed cannot be used."""
    receiver = await Receiver().start()
    sender = WebhookSender(allow_private=False, timeout_s=2.0)
    try:
        for url in (receiver.url, f"http://localhost:{receiver.port}/hook"):
            attempt = await sender.post(url, "whsec_c2VjcmV0c2VjcmV0", "msg_1", b"{}")
            refused("ssrf: delivery to loopback")
            assert attempt.status is None and "loopback" in attempt.error, attempt
    finally:
        await sender.close()
        await receiver.stop()
    assert receiver.deliveries == [] and receiver.verifications == []


async def test_a_redirected_challenge_never_verifies(dapi: Api, endpoints: Endpoints) -> None:
    """An endpoint that redirects the challenge to one that would echo it does not become
    active: the hub stops at the redirect, the target is never called, and after the last try
    the subscription is paused with the redirect status as the reason."""
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    created = await dapi.subscribe("fc-ba", {"type": "webhook", "url": endpoints.url})
    paused = await wait_status(dapi, "fc-ba", created["id"], "paused")
    refused("ssrf: redirect", len(endpoints.redirected))
    assert "307" in paused["status_reason"]
    assert len(endpoints.redirected) == 3  # delivery_settings' retry schedule has three tries
    assert endpoints.target_hits == []


async def test_an_endpoint_that_reflects_the_request_never_verifies(dapi: Api) -> None:
    """An endpoint that answers 200 with whatever it is sent (an echo service inside someone's
    network, say) has not proved it wants alerts: the challenge among the reflected request is
    no answer, so the subscription never turns active, is paused after its schedule, and gets
    no alert."""
    await dapi.add_node("al-cert", "AL")
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    receiver = await Receiver(challenge_form="reflect").start()
    try:
        created = await dapi.subscribe("fc-ba", {"type": "webhook", "url": receiver.url})
        await dapi.post("al-cert", threat_alert("t-1"))
        paused = await wait_status(dapi, "fc-ba", created["id"], "paused")
    finally:
        await receiver.stop()
    refused("ssrf: reflected challenge", len(receiver.verifications))
    assert "challenge" in paused["status_reason"]
    assert len(receiver.verifications) == 3  # delivery_settings' retry schedule has three tries
    assert receiver.deliveries == []


async def test_redirected_events_are_dead_letters_not_followed(dapi: Api) -> None:
    """A verified endpoint that redirects events gets each attempt counted as a failure (last
    status 307) until the event is a dead letter; the target never sees it."""
    endpoints = await Endpoints(307, verify_first=True).start()
    try:
        await dapi.add_node("al-cert", "AL")
        await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
        sub = (await dapi.subscribe("fc-ba", {"type": "webhook", "url": endpoints.url}))["id"]
        await wait_status(dapi, "fc-ba", sub, "active")
        _, posted = await dapi.post("al-cert", threat_alert("t-1"))
        await wait_status(dapi, "fc-ba", sub, "paused")
        _, letters = await dapi.get("fc-ba", f"/v1/subscriptions/{sub}/dead-letters")
        (letter,) = letters["dead_letters"]
        assert letter["hub_id"] == posted["hub_id"] and letter["last_status"] == 307
        refused("ssrf: redirect", len(endpoints.redirected))
        assert len(endpoints.redirected) == letter["attempts"] == 3
        assert endpoints.target_hits == []
    finally:
        await endpoints.stop()

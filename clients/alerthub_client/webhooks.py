"""Checking and receiving the hub's webhook deliveries.

The hub signs each delivery the Standard Webhooks way (https://www.standardwebhooks.com): the
headers webhook-id, webhook-timestamp (Unix seconds) and webhook-signature, which holds
space-separated "v1,<base64>" entries, each an HMAC-SHA256 over "<id>.<timestamp>.<body>" keyed
with the subscription's secret ("whsec_" + base64). `verify_webhook` checks one delivery;
`WebhookReceiver` is a ready aiohttp endpoint that verifies, answers the hub's challenge, drops
repeats and hands each new event to your callback.

This is the only implementation of the check: the hub's own signer and tests use it too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import inspect
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

__all__ = [
    "SECRET_PREFIX",
    "WebhookError",
    "WebhookReceiver",
    "run_receiver",
    "secret_key",
    "sign_webhook",
    "verify_signature",
    "verify_webhook",
]

SECRET_PREFIX = "whsec_"
VERIFICATION = "hub.verification"
DEFAULT_TOLERANCE_S = 300
# Whole seconds only; the bound keeps int() clear of Python's limit on long digit strings.
_TIMESTAMP = re.compile(r"[0-9]{1,18}")
# An event is one alert (the hub takes up to 256 KiB) plus what the hub adds to it.
MAX_BODY_BYTES = 4 * 1024 * 1024

log = logging.getLogger("alerthub_client.webhooks")

OnEvent = Callable[[dict[str, Any]], Awaitable[None] | None]


class WebhookError(ValueError):
    """Why a delivery is refused: str() says it in a sentence, `reason` in a word
    (missing_header, bad_secret, bad_timestamp, stale, bad_signature, not_json)."""

    def __init__(self, message: str, reason: str = "bad_signature") -> None:
        super().__init__(message)
        self.reason = reason


def secret_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: its base64 text decoded, the "whsec_" prefix optional."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError as e:  # binascii.Error, or a non-ASCII str
        raise WebhookError("the webhook secret is not valid base64", "bad_secret") from e
    if not key:
        # Anyone could sign with an empty key.
        raise WebhookError("the webhook secret is empty", "bad_secret")
    return key


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return base64.b64encode(hmac.digest(key, f"{msg_id}.{timestamp}.".encode() + body, "sha256"))


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value for one delivery: "v1," and the base64 HMAC-SHA256. Handy
    to test your own endpoint; the hub signs with this same function."""
    return "v1," + _digest(secret_key(secret), msg_id, str(timestamp), body).decode("ascii")


def _header(headers: Mapping[str, str], name: str, bad: str = "bad_signature") -> str:
    """`name` (lower case) whatever the case of the keys, in a plain dict too. Bytes that are
    not UTF-8 (aiohttp passes them on as surrogates) are refused as `bad`: no sender signed
    them, and encoding them for the HMAC would raise."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not value:
        raise WebhookError(f"the {name} header is missing or empty", "missing_header")
    try:
        value.encode()
    except UnicodeEncodeError as e:
        raise WebhookError(f"the {name} header is not valid UTF-8", bad) from e
    return value


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Return when one "v1" entry of webhook-signature signs this id, timestamp and body with
    `secret`, and the timestamp is within `tolerance_s` of `now` either way; raise WebhookError
    otherwise. Several entries are how a sender rotates keys; other versions are ignored."""
    key = secret_key(secret)
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp", "bad_timestamp")
    signatures = _header(headers, "webhook-signature")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise WebhookError(
            "the webhook-timestamp header is not a Unix time in whole seconds", "bad_timestamp"
        )
    age = (time.time() if now is None else now) - int(timestamp)
    if age > tolerance_s:
        raise WebhookError(
            f"the webhook-timestamp is {age:.0f} s old, more than the {tolerance_s} s allowed",
            "stale",
        )
    if age < -tolerance_s:
        raise WebhookError(
            f"the webhook-timestamp is {-age:.0f} s in the future, "
            f"more than the {tolerance_s} s allowed",
            "stale",
        )
    # The timestamp as sent, not re-formatted: the sender signed its own text.
    expected = _digest(key, msg_id, timestamp, body)
    for entry in signatures.split():
        version, comma, candidate = entry.partition(",")
        if version == "v1" and comma and hmac.compare_digest(candidate.encode(), expected):
            return
    raise WebhookError(
        "no v1 signature in the webhook-signature header matches the message", "bad_signature"
    )


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The event a delivery carries, once its signature and timestamp check out (see
    verify_signature); WebhookError when they do not or the body is not a JSON object.
    `body` must be the raw bytes received, not JSON parsed and dumped again."""
    verify_signature(secret, headers, body, tolerance_s=tolerance_s, now=now)
    try:
        event = json.loads(body)
    except ValueError as e:  # JSONDecodeError, or bytes that are not UTF-8
        raise WebhookError("the body is not JSON", "not_json") from e
    if not isinstance(event, dict):
        raise WebhookError("the body is not a JSON object", "not_json")
    return event


def _answer(code: int, **body: str) -> web.Response:
    return web.json_response(body, status=code)


class WebhookReceiver:
    """An aiohttp endpoint for one webhook subscription. It refuses what does not verify (401;
    400 when the signed body is not a JSON object), answers the hub's challenge, acknowledges a
    repeated webhook-id without calling `on_event` again, and otherwise awaits
    `on_event(event)` (a plain function or a coroutine function) before answering 204.

    When `on_event` raises, the answer is 500 and the id is not remembered, so the hub's retry
    is processed. Ids are remembered in memory (the last `remember` ones): after a restart, a
    redelivery of an event already handled reaches `on_event` again. A plain function runs on
    the event loop: hand blocking work to a thread."""

    def __init__(
        self,
        secret: str,
        on_event: OnEvent,
        *,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        remember: int = 10_000,
        path: str = "/",
    ) -> None:
        secret_key(secret)  # a bad secret is refused now, not on every delivery
        if remember < 0:
            raise ValueError("remember must be 0 or more")
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        self._secret = secret
        self._on_event = on_event
        self._tolerance_s = tolerance_s
        self._remember = remember
        self.path = path
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()
        self.received = 0  # events handed to on_event and acknowledged
        self.duplicates = 0  # repeats acknowledged without calling on_event
        self.refused = 0  # deliveries that did not verify
        self.failed = 0  # events whose on_event raised (answered 500: the hub retries)
        self.verifications = 0  # challenges answered

    @property
    def secret(self) -> str:
        return self._secret

    @secret.setter
    def secret(self, secret: str) -> None:
        """Set once the hub has answered the subscription: a program that subscribes its own
        running receiver learns the secret only then (a challenge refused meanwhile is
        retried by the hub)."""
        secret_key(secret)
        self._secret = secret

    @property
    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "failed": self.failed,
            "verifications": self.verifications,
        }

    def app(self) -> web.Application:
        """A new application with POST `path` routed to this receiver."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(self.path, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        """One delivery; usable as a route handler in an application of your own."""
        body = await request.read()
        try:
            event = verify_webhook(
                self._secret, request.headers, body, tolerance_s=self._tolerance_s
            )
        except WebhookError as e:
            self.refused += 1
            log.warning("webhook refused: %s", e)
            return _answer(400 if e.reason == "not_json" else 401, error=e.reason, message=str(e))
        if event.get("type") == VERIFICATION:
            return self._challenge(event)
        msg_id = request.headers["webhook-id"]
        if msg_id in self._seen:
            self._seen.move_to_end(msg_id)
            self.duplicates += 1
            return _answer(200, status="duplicate")
        if msg_id in self._in_flight:
            # The first copy is still being handled and may yet fail: let the hub come back.
            return _answer(409, error="in_progress", message="this event is being handled")
        self._in_flight.add(msg_id)
        try:
            result = self._on_event(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.failed += 1
            log.exception("on_event failed for webhook-id %s; the hub will retry", msg_id)
            return _answer(500, error="on_event_failed", message="the event was not handled")
        finally:
            self._in_flight.discard(msg_id)
        self._note(msg_id)
        self.received += 1
        return web.Response(status=204)

    def _challenge(self, event: dict[str, Any]) -> web.Response:
        """The hub activates the subscription when a 2xx answer's body is exactly the JSON
        object {"challenge": "<challenge>"} (or the challenge alone as plain text)."""
        challenge = event.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            self.refused += 1
            return _answer(400, error="bad_challenge", message="the challenge is missing")
        self.verifications += 1
        return _answer(200, challenge=challenge)

    def _note(self, msg_id: str) -> None:
        if self._remember == 0:
            return
        self._seen[msg_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on `host`:`port` (0: a free port) while the block runs; yields the URL to
        subscribe with."""
        runner = web.AppRunner(self.app(), shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            bound_host, bound_port = runner.addresses[0][:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            yield f"http://{shown}:{bound_port}{self.path}"
        finally:
            await runner.cleanup()

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        """Serve until cancelled; `on_ready(url)` once listening. OSError when the port is taken."""
        async with self.running(host, port) as url:
            if on_ready is not None:
                on_ready(url)
            await asyncio.Event().wait()


def run_receiver(
    secret: str,
    on_event: OnEvent,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = "/",
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    on_ready: Callable[[str], None] | None = None,
) -> WebhookReceiver:
    """Serve a WebhookReceiver in the foreground until Ctrl-C; returns it, for its counts.
    WebhookError (a ValueError) for a bad secret, OSError when the port is taken."""
    receiver = WebhookReceiver(secret, on_event, tolerance_s=tolerance_s, path=path)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(receiver.serve(host, port, on_ready=on_ready))
    return receiver

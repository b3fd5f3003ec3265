"""One signed webhook POST and what came of it: the only place the hub makes outbound HTTP
requests, with a time limit, a bound on concurrent requests and on the answer read, no
redirects, and the webhook URL checked again each time.

Concurrent POSTs take a slot in one of two lanes. An endpoint whose last event was acknowledged
is trusted and posts in the trusted lane; a new, failing or hanging one (and every verification,
which a hostile endpoint passes as easily as an honest one) waits its turn in the untrusted lane.
So endpoints that hang, however many, hold untrusted slots and never the ones healthy endpoints
need; and every in-flight POST is bounded in time and in the bytes it reads, which bounds memory."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from hub.delivery.delivery_rules import is_success, parse_retry_after
from hub.delivery.signing import webhook_headers
from hub.delivery.webhook_urls import PublicOnlyResolver, UnsafeWebhookUrl, check_webhook_url

MAX_TRUSTED_POSTS = 128
MAX_UNTRUSTED_POSTS = 64
MAX_POSTS = MAX_TRUSTED_POSTS + MAX_UNTRUSTED_POSTS
MAX_RESPONSE_BYTES = 64 * 1024  # of an answer's body; the rest is never read
MAX_HEADERS = 32
MAX_HEADER_FIELD = 8190  # bytes of one header line (aiohttp's default)
MAX_HEADER_BYTES = MAX_HEADERS * MAX_HEADER_FIELD


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST came to: a status (None when no answer) and a reason when it failed.
    `tried` is False when no slot came free in time, so nothing was sent: not the endpoint's
    failure, and not to be counted against it."""

    status: int | None
    error: str
    body: bytes = b""
    retry_after_s: float | None = None
    tried: bool = True

    @property
    def ok(self) -> bool:
        return self.status is not None and is_success(self.status)


class WebhookSender:
    def __init__(self, allow_private: bool, timeout_s: float) -> None:
        self._allow_private = allow_private
        # total covers connecting, sending, the status line, headers and the capped body.
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._timeout_s = timeout_s
        self._lanes = {
            True: asyncio.Semaphore(MAX_TRUSTED_POSTS),
            False: asyncio.Semaphore(MAX_UNTRUSTED_POSTS),
        }
        self._resolver = None if allow_private else PublicOnlyResolver()
        resolver = self._resolver
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_POSTS, resolver=resolver),
            headers={"User-Agent": "alerthub-webhooks/1"},
            max_headers=MAX_HEADERS,
            max_field_size=MAX_HEADER_FIELD,
        )

    async def close(self) -> None:
        await self._session.close()
        if self._resolver is not None:  # the connector does not close a resolver it was given
            await self._resolver.close()

    async def post(
        self, url: str, secret: str, msg_id: str, body: bytes, *, trusted: bool = False
    ) -> Attempt:
        """One attempt, never longer than twice the timeout in all: the wait for a free slot
        in the lane (at most one timeout) and the URL check (DNS) are bounded too, so a
        worker's lease cannot lapse mid-attempt."""
        lane = self._lanes[trusted]
        try:
            async with asyncio.timeout(self._timeout_s):
                await lane.acquire()
        except TimeoutError:
            return Attempt(None, "no free slot to post from: the hub is busy", tried=False)
        try:
            async with asyncio.timeout(2 * self._timeout_s):
                return await self._post(url, secret, msg_id, body)
        except TimeoutError:
            return Attempt(None, f"no answer within {self._timeout_s:g} s")
        finally:
            lane.release()

    async def _post(self, url: str, secret: str, msg_id: str, body: bytes) -> Attempt:
        try:
            # Again at each delivery: an IP literal never reaches the resolver's check.
            await check_webhook_url(url, allow_private=self._allow_private)
        except UnsafeWebhookUrl as e:
            return Attempt(None, str(e))
        headers = webhook_headers(secret, msg_id, int(time.time()), body)
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
            ) as resp:
                content = await read_capped(resp.content, MAX_RESPONSE_BYTES)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                error = "" if is_success(resp.status) else f"the endpoint answered {resp.status}"
                return Attempt(resp.status, error, content, retry_after)
        except TimeoutError:
            return Attempt(None, f"no answer within {self._timeout_s:g} s")
        except aiohttp.ClientError as e:
            return Attempt(None, f"{type(e).__name__}: {str(e)[:200]}")
        except OSError as e:
            return Attempt(None, f"{type(e).__name__}: {str(e)[:200]}")


async def read_capped(content: aiohttp.StreamReader, cap: int) -> bytes:
    """The body up to its end or `cap` bytes, whichever comes first. An answer cut off at the
    cap is not read further: leaving it unread closes the connection instead of reusing it."""
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        chunk = await content.read(cap - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)

"""One signed webhook POST and what came of it: the only place the hub makes outbound HTTP
requests, with a time limit, a bound on concurrent requests and on the answer read, no
redirects, and the webhook URL checked again each time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from hub.delivery_rules import is_success, parse_retry_after
from hub.signing import webhook_headers
from hub.webhook_urls import PublicOnlyResolver, UnsafeWebhookUrl, check_webhook_url

MAX_CONCURRENT_POSTS = 128
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST came to: a status (None when no answer) and a reason when it failed."""

    status: int | None
    error: str
    body: bytes = b""
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and is_success(self.status)


class WebhookSender:
    def __init__(self, allow_private: bool, timeout_s: float) -> None:
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._posts = asyncio.Semaphore(MAX_CONCURRENT_POSTS)
        self._resolver = None if allow_private else PublicOnlyResolver()
        resolver = self._resolver
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONCURRENT_POSTS, resolver=resolver),
            headers={"User-Agent": "alerthub-webhooks/1"},
        )

    async def close(self) -> None:
        await self._session.close()
        if self._resolver is not None:  # the connector does not close a resolver it was given
            await self._resolver.close()

    async def post(self, url: str, secret: str, msg_id: str, body: bytes) -> Attempt:
        """One attempt, never longer than twice the timeout in all: the URL check (DNS) and the
        wait for a free slot are bounded too, so a worker's lease cannot lapse mid-attempt."""
        try:
            async with asyncio.timeout(2 * self._timeout_s):
                return await self._post(url, secret, msg_id, body)
        except TimeoutError:
            return Attempt(None, f"no answer within {self._timeout_s:g} s")

    async def _post(self, url: str, secret: str, msg_id: str, body: bytes) -> Attempt:
        try:
            # Again at each delivery: an IP literal never reaches the resolver's check.
            await check_webhook_url(url, allow_private=self._allow_private)
        except UnsafeWebhookUrl as e:
            return Attempt(None, str(e))
        headers = webhook_headers(secret, msg_id, int(time.time()), body)
        try:
            async with (
                self._posts,
                self._session.post(
                    url, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
                ) as resp,
            ):
                content = await resp.content.read(MAX_RESPONSE_BYTES)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                error = "" if is_success(resp.status) else f"the endpoint answered {resp.status}"
                return Attempt(resp.status, error, content, retry_after)
        except TimeoutError:
            return Attempt(None, f"no answer within {self._timeout_s:g} s")
        except aiohttp.ClientError as e:
            return Attempt(None, f"{type(e).__name__}: {str(e)[:200]}")
        except OSError as e:
            return Attempt(None, f"{type(e).__name__}: {str(e)[:200]}")

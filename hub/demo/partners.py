"""The demo's partners, each reading its subscription the way a real one would: over SSE, by
pull, or by a verified webhook, through alerthub_client. Each also answers "what does my feed
hold since the last step" by a pull, which is what the demo checks the live reader against."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from alerthub_client import HubClient, WebhookReceiver
from alerthub_client.errors import HubError

SECRET_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class Seen:
    """One event as a partner saw it."""

    event_id: str
    type: str
    hub_id: str  # "" for an event about no alert (node.registered)

    @classmethod
    def of(cls, event: dict[str, Any]) -> Seen:
        hub_id = str(event.get("hub_id") or "")
        return cls(str(event.get("id")), str(event.get("type")), hub_id)


@dataclass
class Partner:
    node: str
    delivery: str  # sse | pull | webhook
    client: HubClient
    subscription_id: str = ""
    live: list[Seen] = field(default_factory=list)  # what the reader got, in order
    _live_ids: set[str] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _feed_after: str | None = None
    _task: asyncio.Task[None] | None = None
    _endpoint: WebhookEndpoint | None = None
    reader_error: str | None = None

    async def subscribe(self, filter: dict[str, Any]) -> None:
        """Subscribe; a webhook partner first opens its verifying receiver on loopback."""
        if self.delivery != "webhook":
            answer = await self.client.subscribe(filter)
            self.subscription_id = answer["id"]
            if self.delivery == "sse":
                self._task = asyncio.create_task(self._read_sse(), name=f"sse-{self.node}")
            return
        self._endpoint = WebhookEndpoint(self._note)
        url = await self._endpoint.start()
        answer = await self.client.subscribe(filter, webhook_url=url)
        self.subscription_id = answer["id"]
        self._endpoint.know_secret(answer["secret"])

    async def wait_active(self, within_s: float) -> None:
        """Until a webhook subscription has answered the hub's challenge (at once otherwise)."""
        deadline = time.monotonic() + within_s
        while self.delivery == "webhook":
            sub = await self.client.get_subscription(self.subscription_id)
            if sub.get("status") == "active":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.node}'s webhook is still {sub.get('status')} after {within_s:.0f} s"
                )
            await asyncio.sleep(0.05)

    async def _read_sse(self) -> None:
        try:
            async for event in self.client.events(self.subscription_id):
                self._note({"id": event.id, "type": event.type, **event.data})
        except HubError as e:  # the demo reports it as a mismatch: the reader fell silent
            self.reader_error = str(e)

    def _note(self, event: dict[str, Any]) -> None:
        seen = Seen.of(event)
        if seen.event_id not in self._live_ids:
            self._live_ids.add(seen.event_id)
            self.live.append(seen)
            self._changed.set()

    async def feed_since_last(self) -> list[Seen]:
        """The events the feed gained since the last call, read by pull (for a pull partner
        this is its reading; for the others, what their live reader must match)."""
        found: list[Seen] = []
        while True:
            page = await self.client.pull(self.subscription_id, after=self._feed_after)
            if not page.items:
                break
            found.extend(Seen.of(event) for event in page.items)
            self._feed_after = page.next
        if self.delivery == "pull":
            for event in found:
                self._note({"id": event.event_id, "type": event.type, "hub_id": event.hub_id})
        return found

    async def wait_live(self, event_ids: set[str], within_s: float) -> bool:
        """Whether the live reader got every one of `event_ids` within `within_s` seconds."""
        deadline = time.monotonic() + within_s
        while not event_ids <= self._live_ids:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            if event_ids <= self._live_ids:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._endpoint is not None:
            await self._endpoint.close()


class _SecretAwaitingReceiver(WebhookReceiver):
    """A receiver whose deliveries wait (briefly) until the subscription's secret is known."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        super().__init__("whsec_" + base64.b64encode(os.urandom(32)).decode(), on_event)
        self.secret_known = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.secret_known.wait(), SECRET_WAIT_S)
        return await super().handle(request)


class WebhookEndpoint:
    """A WebhookReceiver on a loopback port. The secret comes with the subscription's answer,
    and the hub may send its challenge before that answer arrives: a delivery waits for the
    secret (briefly) instead of being refused and retried seconds later."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.receiver = _SecretAwaitingReceiver(on_event)
        self._stack = contextlib.AsyncExitStack()

    def know_secret(self, secret: str) -> None:
        self.receiver.secret = secret
        self.receiver.secret_known.set()

    async def start(self) -> str:
        """Serve on a free loopback port; the URL to subscribe with."""
        return await self._stack.enter_async_context(self.receiver.running())

    async def close(self) -> None:
        await self._stack.aclose()

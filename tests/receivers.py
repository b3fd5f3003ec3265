"""Real webhook receivers on loopback ports, scripted per test: they answer the verification
challenge, record every delivery with its headers and arrival time, and can fail or hang."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from hub.store.embedded import free_port


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def event(self) -> dict[str, Any]:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """`answers` are the statuses of the next event deliveries (then 200s); `hang` makes every
    event delivery wait until the test ends."""

    answers: list[int] = field(default_factory=list)
    hang: bool = False
    echo_challenge: bool = True
    # How the challenge is echoed: "json" ({"challenge": ...}), "text" (the challenge and a line
    # break), or "reflect" (the whole request body sent back, as a naive echo server does).
    challenge_form: str = "json"
    retry_after: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    verifications: list[Delivery] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    def release(self) -> None:
        """Answer the deliveries held by `hang` (200), and hold none from now on."""
        self.hang = False
        self._released.set()

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        record = Delivery(dict(request.headers), await request.read(), time.monotonic())
        data = orjson.loads(record.body)
        if data.get("type") == "hub.verification":
            self.verifications.append(record)
            self._changed.set()
            text = data["challenge"] if self.echo_challenge else "no"
            if self.challenge_form == "text":
                return web.Response(text=text + "\n")
            if self.challenge_form == "reflect":
                return web.Response(body=record.body, content_type="application/json")
            return web.json_response({"challenge": text})
        self.deliveries.append(record)
        self._changed.set()
        if self.hang:
            await self._released.wait()
            return web.Response(status=200)
        status = self.answers.pop(0) if self.answers else 200
        headers = {"Retry-After": self.retry_after} if self.retry_after and status >= 400 else None
        return web.Response(status=status, headers=headers)

    async def wait_for(self, predicate, within: float = 10.0) -> None:
        """Until predicate(self) holds, woken by each request; AssertionError after `within`."""
        deadline = time.monotonic() + within
        while not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"receiver condition not met within {within} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

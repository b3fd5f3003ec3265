"""A small Server-Sent Events reader for tests: frames as dicts, comments included."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import ClientResponse


class SseReader:
    def __init__(self, response: ClientResponse) -> None:
        self.response = response
        self._buffer = b""

    async def next_frame(self, within: float = 5.0) -> dict[str, Any]:
        """The next frame: {"id", "event", "data"} or {"comment"} or {"retry"}."""
        return await asyncio.wait_for(self._next(), within)

    async def _next(self) -> dict[str, Any]:
        while b"\n\n" not in self._buffer:
            chunk = await self.response.content.readany()
            if not chunk:
                raise EOFError("the stream ended")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\n\n", 1)
        frame: dict[str, Any] = {}
        for line in raw.decode().split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                frame["comment"] = value
            elif name == "data":
                frame["data"] = orjson.loads(value)
            else:
                frame[name] = value
        return frame

    async def next_event(self, within: float = 5.0) -> dict[str, Any]:
        """The next frame that is an event, skipping comments and the retry hint."""
        while True:
            frame = await self.next_frame(within)
            if "event" in frame or "data" in frame:
                return frame

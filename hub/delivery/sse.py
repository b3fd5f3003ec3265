"""Server-Sent Events: frames built whole as bytes (pure), and the stream of one subscription's
feed that resumes from Last-Event-ID with no gap and no repeat."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from hub.delivery.feed_events import FeedEntry
from hub.delivery.feed_news import FeedNews, Revocation, first_of
from hub.delivery.feeds import FeedReader
from hub.delivery.sse_slots import StreamLease
from hub.errors import HistoryTruncated
from hub.logs import get_logger
from hub.nodes import Node, NodeRegistry

log = get_logger("hub.sse")

PAGE = 100
NOTE_EVERY_S = 1.0  # how often a busy stream notes its read position


def frame(data: Any, event: str | None = None, event_id: str | None = None) -> bytes:
    """One event: `id:`, `event:`, then `data:` as one line of compact JSON (JSON never holds a
    raw newline, so one data line is always enough)."""
    return raw_frame(orjson.dumps(data), event, event_id)


def raw_frame(json_body: bytes, event: str | None = None, event_id: str | None = None) -> bytes:
    """`frame` for a body already serialised by orjson (compact: no raw newline in it)."""
    lines = []
    if event_id is not None:
        lines.append(b"id: " + event_id.encode())
    if event is not None:
        lines.append(b"event: " + event.encode())
    lines.append(b"data: " + json_body)
    return b"\n".join(lines) + b"\n\n"


def comment(text: str) -> bytes:
    """A comment line, which clients ignore: a heartbeat that keeps proxies from closing us."""
    return b": " + text.replace("\n", " ").encode() + b"\n\n"


def truncated_frame(after: str, reason: str) -> bytes:
    return frame({"after": after, "message": reason}, event="history-truncated")


class ReadPosition:
    """Where this stream has read to, noted at most every NOTE_EVERY_S while it is busy, and
    always once it has caught up, so the status page's lag is exact for a quiet feed."""

    def __init__(self, feeds: FeedReader, sub_id: str, enabled: bool) -> None:
        self._feeds = feeds
        self._sub_id = sub_id
        self._enabled = enabled  # only the owner's reading moves it (an operator's does not)
        self._unnoted: FeedEntry | None = None
        self._noted_at = 0.0

    async def advanced(self, entry: FeedEntry) -> None:
        self._unnoted = entry
        if time.monotonic() - self._noted_at >= NOTE_EVERY_S:
            await self.settle()

    async def settle(self) -> None:
        if self._enabled and self._unnoted is not None:
            entry, self._unnoted = self._unnoted, None
            self._noted_at = time.monotonic()
            await self._feeds.note_read(self._sub_id, entry)


@dataclass(frozen=True, slots=True)
class NodeWatch:
    """Ends a stream once a node it serves (the caller, the subscription's owner) is revoked:
    at once on the revocation message, and at the latest at the check before each heartbeat,
    should the message have been lost."""

    revocation: Revocation
    nodes: NodeRegistry
    node_ids: tuple[str, ...]

    @property
    def revoked(self) -> bool:
        return self.revocation.revoked

    async def live(self) -> bool:
        """Whether every watched node is still live, asking Redis."""
        if not self.revocation.revoked and not await self.nodes.all_live(self.node_ids):
            self.revocation.note()
        return not self.revocation.revoked


async def _send_feed(
    response: web.StreamResponse,
    feeds: FeedReader,
    woken: asyncio.Event,
    sub_id: str,
    readers: tuple[Node, ...],
    after: str | None,
    heartbeat_s: float,
    stopping: asyncio.Event,
    position: ReadPosition,
    lease: StreamLease | None,
    watch: NodeWatch,
) -> None:
    # Once more now that the stream listens: a revocation since the request was authenticated
    # would otherwise go unheard until the first heartbeat.
    if not await watch.live():
        return
    await response.write(b"retry: 2000\n\n")
    last_write = time.monotonic()
    check_truncation = after is not None
    while not stopping.is_set():
        if watch.revoked:
            log.info("sse_stream_revoked", subscription=sub_id)
            return
        if lease is not None and not await lease.keep():
            log.warning("sse_slot_lost", subscription=sub_id)
            return  # the client reconnects, and is counted again
        woken.clear()
        if check_truncation and after is not None:
            try:
                await feeds.check_not_truncated(sub_id, after)
            except HistoryTruncated as e:
                # In band: the client learns what it missed and goes on from the oldest held.
                await response.write(truncated_frame(after, e.message))
                after = None
        entries = await feeds.entries(sub_id, after, PAGE)
        # Checked when the stream starts, and again whenever the reader is a full page behind
        # (it may have fallen behind the feed's retention).
        check_truncation = len(entries) == PAGE
        if entries:
            entries = await feeds.retyped(sub_id, entries, readers)
            bodies = await feeds.personal(entries, readers)
            frames = [
                raw_frame(body, entry.type, entry.id)
                for entry in entries
                if (body := bodies[entry.id]) is not None
            ]
            if frames:
                await response.write(b"".join(frames))
                last_write = time.monotonic()
            after = entries[-1].id
            await position.advanced(entries[-1])
            continue
        await position.settle()
        # News of entries this reader may not see wakes it too: time the heartbeat from the
        # last write, not from the last wake-up.
        quiet_for = time.monotonic() - last_write
        if quiet_for >= heartbeat_s or not await first_of(woken, stopping, heartbeat_s - quiet_for):
            if not await watch.live():
                continue  # ends at the top of the loop
            await response.write(comment("heartbeat"))
            last_write = time.monotonic()


async def stream_feed(
    request: web.Request,
    feeds: FeedReader,
    news: FeedNews,
    sub_id: str,
    readers: tuple[Node, ...],
    after: str | None,
    heartbeat_s: float,
    stopping: asyncio.Event,
    owner_reading: bool,
    nodes: NodeRegistry,
    lease: StreamLease | None = None,
) -> web.StreamResponse:
    """The feed as Server-Sent Events until the client goes, the hub stops, or a node among
    `readers` (whose token opened it, whose subscription it is) is revoked."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    position = ReadPosition(feeds, sub_id, enabled=owner_reading)
    node_ids = tuple(sorted({r.id for r in readers}))
    with news.listening(sub_id) as woken, news.revocation(node_ids, woken) as revocation:
        watch = NodeWatch(revocation, nodes, node_ids)
        await response.prepare(request)
        try:
            await _send_feed(
                response,
                feeds,
                woken,
                sub_id,
                readers,
                after,
                heartbeat_s,
                stopping,
                position,
                lease,
                watch,
            )
        except ConnectionResetError:
            pass  # the client went away; its Last-Event-ID lets it resume
        except RedisError as e:
            # Headers are sent: no error body now. End the stream; the client resumes.
            log.warning("sse_store_unavailable", subscription=sub_id, error=type(e).__name__)
        finally:
            # What was sent while the stream was busy is noted even though it ends now.
            with contextlib.suppress(RedisError, OSError):
                await position.settle()
    return response

"""Wake-ups for feed readers: when the fan-out appends to feeds, it publishes the subscription
ids; every hub process listens on one pub/sub connection and wakes its local SSE streams and
webhook workers. A lost message costs latency, not events: readers also look again on a timer.

(Carrying the appended entries in the message, so that an up-to-date stream need not read its
feed, was tried and measured on 2026-11-24: 14% less CPU per event at 5 alerts/s to 1,000
streams, but 30% more at 20 alerts/s, where parsing the large messages cost more than the
reads it saved; the latency was no better. Not kept.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.logs import get_logger

log = get_logger("hub.feed_news")


@dataclass(eq=False)
class Revocation:
    """Whether a node that a stream serves has been revoked; noting it wakes the stream."""

    woken: asyncio.Event
    revoked: bool = False

    def note(self) -> None:
        self.revoked = True
        self.woken.set()


class FeedNews:
    """Also carries revocations (`revoked_channel`, which revoke_node_lua publishes to) on the
    same connection: a revoked node's streams end at once in every process. A lost message
    costs a heartbeat there: the streams check their nodes again before each one."""

    def __init__(self, redis: Redis, channel: str, revoked_channel: str | None = None) -> None:
        self._redis = redis
        self._channel = channel
        self._revoked_channel = revoked_channel
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._revocations: dict[str, set[Revocation]] = defaultdict(set)
        # News asked for in this loop turn, published together at its end: the fan-out's
        # shards that one event wakes each have news, and one message serves them all.
        self._pending: set[str] = set()
        self._published: asyncio.Future[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()

    async def publish(self, sub_ids: Iterable[str]) -> None:
        """Wake the readers of these subscriptions in every process."""
        ids = set(sub_ids)
        if not ids:
            return
        self._pending |= ids
        if self._published is None:
            loop = asyncio.get_running_loop()
            self._published = loop.create_future()
            loop.call_soon(self._start_publishing)
        await asyncio.shield(self._published)

    def _start_publishing(self) -> None:
        task = asyncio.get_running_loop().create_task(self._publish_pending())
        self._publishing.add(task)  # held: the loop keeps only a weak reference to a task
        task.add_done_callback(self._publishing.discard)

    async def _publish_pending(self) -> None:
        ids, self._pending = ",".join(sorted(self._pending)), set()
        done, self._published = self._published, None
        assert done is not None
        try:
            await self._redis.publish(self._channel, ids)
        except BaseException as e:
            done.set_exception(e)
            done.exception()  # retrieved: a publisher that stopped waiting is no error
            if not isinstance(e, Exception):
                raise
        else:
            done.set_result(None)

    @contextlib.contextmanager
    def listening(self, sub_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `sub_id`'s feed grows while the block runs; clear it before
        reading the feed, so news that arrives during the read is not missed."""
        event = asyncio.Event()
        self._waiters[sub_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(sub_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[sub_id]

    @contextlib.contextmanager
    def revocation(self, node_ids: Iterable[str], woken: asyncio.Event) -> Iterator[Revocation]:
        """A Revocation noted (and `woken` set) when any of `node_ids` is revoked while the
        block runs, by any hub process."""
        watch = Revocation(woken)
        ids = set(node_ids)
        for node_id in ids:
            self._revocations[node_id].add(watch)
        try:
            yield watch
        finally:
            for node_id in ids:
                watches = self._revocations.get(node_id)
                if watches is not None:
                    watches.discard(watch)
                    if not watches:
                        del self._revocations[node_id]

    def revoked(self, node_id: str) -> None:
        for watch in list(self._revocations.get(node_id, ())):
            watch.note()

    def wake(self, sub_ids: Iterable[str]) -> None:
        for sub_id in sub_ids:
            for event in self._waiters.get(sub_id, ()):
                event.set()

    def wake_all(self) -> None:
        for waiters in list(self._waiters.values()):
            for event in waiters:
                event.set()

    async def run(self) -> None:
        """Listen until cancelled; reconnect after a Redis failure."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                channels = [self._channel]
                if self._revoked_channel is not None:
                    channels.append(self._revoked_channel)
                await pubsub.subscribe(*channels)
                # Anything published while we were away is found by the readers' own timers;
                # waking everyone now makes up for it at once.
                self.wake_all()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    text = message["data"].decode(errors="replace")
                    if message["channel"].decode(errors="replace") == self._revoked_channel:
                        self.revoked(text)
                    else:
                        self.wake(text.split(","))
            except (RedisError, OSError) as e:
                log.warning("feed_news_reconnect", error=type(e).__name__)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


async def first_of(woken: asyncio.Event, stopping: asyncio.Event, seconds: float) -> bool:
    """Wait until `woken` is set (True) or `seconds` pass (False); True at once when stopping.
    No task is made per wait (this runs once per event per open stream): whoever sets
    `stopping` also wakes every waiter (FeedNews.wake_all)."""
    if stopping.is_set() or woken.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await woken.wait()
    except TimeoutError:
        return stopping.is_set()
    return True

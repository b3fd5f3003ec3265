"""Wake-ups for feed readers: when the fan-out appends to feeds, it publishes what it appended
(each entry with the feed's previous newest id); every hub process listens on one pub/sub
connection and hands the entries to its local SSE streams and wakes its webhook workers. A
reader takes pushed entries only when they follow on from what it sent, else it reads the
feed; a lost message costs latency, not events: readers also look again on a timer."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.feeds import FeedEntry
from hub.ids import stream_id
from hub.logs import get_logger

log = get_logger("hub.feed_news")


MAILBOX_SIZE = 256


class Mailbox:
    """One reader's wake-up: `event` is set when its feed grows; `pushed` holds the appended
    entries as (previous newest id, entry), oldest first, at most MAILBOX_SIZE."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.pushed: deque[tuple[str, FeedEntry]] = deque(maxlen=MAILBOX_SIZE)

    def take_following(self, after: str | None) -> list[FeedEntry]:
        """The pushed entries that follow on from `after` with no gap, taken out; [] when they
        do not (the reader then reads the feed itself)."""
        taken: list[FeedEntry] = []
        position = after or ""
        while self.pushed:
            previous, entry = self.pushed.popleft()
            if position and stream_id(entry.id) <= stream_id(position):
                continue  # already sent (read from the feed before the news came)
            if previous != position:
                self.pushed.clear()
                break
            taken.append(entry)
            position = entry.id
        return taken


class FeedNews:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._waiters: dict[str, set[Mailbox]] = defaultdict(set)

    async def publish(self, appended: list[tuple[str, str, FeedEntry]]) -> None:
        """Tell every process about (subscription id, previous newest id, entry) appends."""
        if appended:
            message = [[sub_id, previous, *entry.as_row()] for sub_id, previous, entry in appended]
            await self._redis.publish(self._channel, orjson.dumps(message))

    async def wake_remote(self, sub_ids: list[str]) -> None:
        """Wake the readers of these subscriptions in every process, with no entries."""
        await self._redis.publish(self._channel, orjson.dumps([[s] for s in sub_ids]))

    @contextlib.contextmanager
    def listening(self, sub_id: str) -> Iterator[Mailbox]:
        """A mailbox filled whenever `sub_id`'s feed grows while the block runs; clear its event
        before reading the feed, so news that arrives during the read is not missed."""
        mailbox = Mailbox()
        self._waiters[sub_id].add(mailbox)
        try:
            yield mailbox
        finally:
            waiters = self._waiters.get(sub_id)
            if waiters is not None:
                waiters.discard(mailbox)
                if not waiters:
                    del self._waiters[sub_id]

    def deliver(self, message: list[list[Any]]) -> None:
        for item in message:
            mailboxes = self._waiters.get(item[0])
            if not mailboxes:
                continue
            pushed = (item[1], FeedEntry.from_row(item[2:])) if len(item) > 1 else None
            for mailbox in mailboxes:
                if pushed is not None:
                    mailbox.pushed.append(pushed)
                mailbox.event.set()

    def _deliver_raw(self, data: bytes) -> None:
        try:
            self.deliver(orjson.loads(data))
        except (ValueError, TypeError, IndexError) as e:
            # Not ours to stop on: readers find what it announced on their own timers.
            log.error("feed_news_unreadable", error=type(e).__name__)
            self.wake_all()

    def wake_all(self) -> None:
        for waiters in list(self._waiters.values()):
            for mailbox in waiters:
                mailbox.event.set()

    async def run(self) -> None:
        """Listen until cancelled; reconnect after a Redis failure."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                # Anything published while we were away is found by the readers' own timers;
                # waking everyone now makes up for it at once.
                self.wake_all()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._deliver_raw(message["data"])
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

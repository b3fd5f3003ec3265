"""A reader takes entries the fan-out pushed only when they follow on with no gap. Pure."""

from __future__ import annotations

from hub.feed_news import Mailbox
from hub.feeds import FeedEntry, LruCache


def entry(entry_id: str) -> FeedEntry:
    return FeedEntry(entry_id, "alert.created", "h", "c", "t", 1)


def test_takes_a_chain_that_follows_on() -> None:
    """Entries whose previous ids chain from the reader's position are taken in order."""
    box = Mailbox()
    box.pushed.extend([("5-0", entry("6-0")), ("6-0", entry("9-0"))])
    assert [e.id for e in box.take_following("5-0")] == ["6-0", "9-0"]
    assert not box.pushed


def test_a_gap_means_read_the_feed() -> None:
    """An entry whose previous id is not the reader's position is not taken (nor anything
    after it): the reader must read the feed, or it would skip an entry."""
    box = Mailbox()
    box.pushed.extend([("7-0", entry("8-0")), ("8-0", entry("9-0"))])
    assert box.take_following("5-0") == []
    assert not box.pushed


def test_entries_already_sent_are_skipped() -> None:
    """A reader that read the feed past a pushed entry skips it and takes what follows."""
    box = Mailbox()
    box.pushed.extend([("5-0", entry("6-0")), ("6-0", entry("7-0"))])
    assert [e.id for e in box.take_following("6-0")] == ["7-0"]


def test_first_entry_of_an_empty_feed() -> None:
    """A reader with no position takes a feed's first-ever entry (no previous id)."""
    box = Mailbox()
    box.pushed.append(("", entry("1-0")))
    assert [e.id for e in box.take_following(None)] == ["1-0"]


def test_body_cache_is_bounded_by_bytes() -> None:
    """The render cache evicts the oldest bodies once their bytes pass the budget."""
    cache: LruCache[bytes] = LruCache(100, weigh=len, max_weight=10)
    for n in range(5):
        cache.put(n, b"abcd")
    assert [cache.get(n) for n in range(5)] == [None, None, None, b"abcd", b"abcd"]

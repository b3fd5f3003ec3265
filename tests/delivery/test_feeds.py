"""The render cache's bound. Pure."""

from __future__ import annotations

from hub.delivery.lru import LruCache


def test_body_cache_is_bounded_by_bytes() -> None:
    """The render cache evicts the oldest bodies once their bytes pass the budget."""
    cache: LruCache[bytes] = LruCache(100, weigh=len, max_weight=10)
    for n in range(5):
        cache.put(n, b"abcd")
    assert [cache.get(n) for n in range(5)] == [None, None, None, b"abcd", b"abcd"]

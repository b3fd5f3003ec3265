"""A bounded cache, by count and optionally by weight."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LruCache(Generic[T]):
    """The most recently put values, at most `size` of them and, when `weigh` is given, at most
    `max_weight` in all (bodies of up to 256 KiB must not pile up to gigabytes)."""

    def __init__(
        self, size: int, weigh: Callable[[T], int] | None = None, max_weight: int = 0
    ) -> None:
        self._size = size
        self._weigh = weigh
        self._max_weight = max_weight
        self._weight = 0
        self._items: OrderedDict[object, T] = OrderedDict()

    def get(self, key: object) -> T | None:
        return self._items.get(key)

    def put(self, key: object, value: T) -> None:
        old = self._items.pop(key, None)
        if old is not None and self._weigh is not None:
            self._weight -= self._weigh(old)
        self._items[key] = value
        if self._weigh is not None:
            self._weight += self._weigh(value)
        while len(self._items) > self._size or (
            self._weigh is not None and self._weight > self._max_weight and len(self._items) > 1
        ):
            _, evicted = self._items.popitem(last=False)
            if self._weigh is not None:
                self._weight -= self._weigh(evicted)

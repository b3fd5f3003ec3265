"""Hub ids: ULIDs (48-bit milliseconds + 80 random bits, Crockford base32), so that their
lexical order is their time order and a listing can page by id alone."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_LENGTH = 26


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


class UlidGenerator:
    """Within one process, each id sorts after the previous one even inside one millisecond (or
    when the clock steps back): the random part of a repeated millisecond counts up instead."""

    def __init__(self) -> None:
        self._last_ms = -1
        self._last_random = 0

    def new(self, now_ms: int | None = None) -> str:
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        if ms <= self._last_ms:
            ms = self._last_ms
            random = (self._last_random + 1) & ((1 << 80) - 1)
        else:
            random = secrets.randbits(80)
        self._last_ms, self._last_random = ms, random
        return _encode(ms, 10) + _encode(random, 16)


_process_ulids = UlidGenerator()


def new_ulid() -> str:
    return _process_ulids.new()


def ulid_floor(moment: datetime) -> str:
    """The smallest ULID at `moment`: every id made at or after it sorts at or above this."""
    ms = max(0, int(moment.timestamp() * 1000))
    return _encode(ms, 10) + "0" * 16


def is_ulid(text: str) -> bool:
    return len(text) == ULID_LENGTH and all(c in _ALPHABET for c in text)


def new_cluster_id() -> str:
    """Opaque: it must not reveal the hub id of the cluster's first report (dedup must not leak)."""
    return "cl_" + secrets.token_hex(12)


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""Hub ids sort in the order they were made, so listings page newest first by id alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hub.ids import (
    UlidGenerator,
    _encode,
    _ulid_text,
    is_ulid,
    now_rfc3339,
    ulid_floor,
    utc_now,
)


def test_ids_made_in_one_millisecond_keep_their_order() -> None:
    """Ids made within the same millisecond still sort in the order they were made."""
    ulids = UlidGenerator()
    ids = [ulids.new(now_ms=1_700_000_000_000) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000 and all(is_ulid(i) for i in ids)


def test_clock_stepping_back_does_not_reorder() -> None:
    """An id made after the clock stepped back still sorts after the earlier ones."""
    ulids = UlidGenerator()
    first = ulids.new(now_ms=1_800_000_000_000)
    second = ulids.new(now_ms=1_799_999_999_000)
    assert second > first


def test_floor_bounds_ids_of_that_moment() -> None:
    """ulid_floor(t) sorts at or below every id made at or after t, above every id made before."""
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    assert UlidGenerator().new(now_ms=ms) >= ulid_floor(moment)
    assert UlidGenerator().new(now_ms=ms - 1) < ulid_floor(moment)


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**80 - 1))
def test_ulid_text_is_the_digit_by_digit_encoding(ms: int, random: int) -> None:
    """The one-call encoding gives the Crockford digits of the timestamp and the random part."""
    assert _ulid_text(ms, random) == _encode(ms, 10) + _encode(random, 16)


def test_now_rfc3339_is_the_current_utc_time() -> None:
    """The UTC time to the millisecond, between two clock readings, in RFC 3339."""
    before = utc_now()
    text = now_rfc3339()
    after = utc_now()
    assert len(text) == 24 and text.endswith("Z")
    assert as_text(before) <= text <= as_text(after)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= moment <= after


def as_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

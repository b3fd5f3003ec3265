"""Hub ids sort in the order they were made, so listings page newest first by id alone."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.ids import UlidGenerator, is_ulid, ulid_floor


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

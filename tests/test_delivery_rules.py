"""Retry timing and pausing, pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hub.delivery_rules import is_gone, parse_retry_after, retry_delay, should_pause
from hub.settings import DEFAULT_RETRY_SCHEDULE


def test_schedule_with_jitter_then_exhausted() -> None:
    """The n-th failure waits schedule[n] ± 20%; after the last, no more tries."""
    rng = random.Random(7)
    for attempts, base in enumerate(DEFAULT_RETRY_SCHEDULE[1:], start=1):
        delay = retry_delay(DEFAULT_RETRY_SCHEDULE, attempts, rng=rng)
        assert delay is not None and base * 0.8 <= delay <= base * 1.2
    assert retry_delay(DEFAULT_RETRY_SCHEDULE, len(DEFAULT_RETRY_SCHEDULE)) is None


def test_jitter_spreads_retries() -> None:
    """Two failures at once are not retried at the same instant."""
    delays = {retry_delay((0, 300), 1, rng=random.Random(seed)) for seed in range(20)}
    assert len(delays) == 20


def test_retry_after_is_a_floor_capped_at_a_day() -> None:
    """Retry-After delays a retry past the schedule but never beyond a day."""
    assert retry_delay((0, 5), 1, retry_after_s=60) == 60
    assert retry_delay((0, 5), 1, retry_after_s=10**9) == 86_400
    delay = retry_delay((0, 5), 1, retry_after_s=1)
    assert delay is not None and delay >= 4


def test_parse_retry_after() -> None:
    """Seconds or an HTTP date; junk is ignored."""
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Tue, 24 Nov 2026 12:01:00 GMT", now) == 60
    assert parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_pause_only_when_failing_since_the_event_first_failed() -> None:
    """A success after the event's first failure (failing_since later) keeps it running."""
    assert should_pause(1000, 1000) and should_pause(900, 1000)
    assert not should_pause(1100, 1000) and not should_pause(None, 1000)


def test_only_410_means_gone() -> None:
    """410 Gone alone ends a subscription; other failures, 404 included, are retried."""
    assert is_gone(410)
    assert not any(is_gone(s) for s in (None, 200, 404, 429, 500, 503))

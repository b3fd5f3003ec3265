"""Retry timing, pausing and the verification answer, pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
import pytest

from hub.delivery.delivery_rules import (
    answers_challenge,
    is_gone,
    parse_retry_after,
    retry_delay,
    settle_attempt,
    should_pause,
)
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


CHALLENGE = "Zm9vYmFyLWNoYWxsZW5nZS0xMjM0NTY3OA"
REQUEST = orjson.dumps(
    {
        "type": "hub.verification",
        "id": "verify_01J0000000000000000000000",
        "subscription_id": "01J0000000000000000000001",
        "challenge": CHALLENGE,
        "occurred_at": "2026-11-20T08:15:00Z",
    }
)


@pytest.mark.parametrize(
    "body",
    [
        CHALLENGE.encode(),
        CHALLENGE.encode() + b"\n",  # echo in a shell script
        b"  " + CHALLENGE.encode() + b"\r\n",
        orjson.dumps({"challenge": CHALLENGE}),
        b'{\n  "challenge": "' + CHALLENGE.encode() + b'"\n}\n',  # pretty-printed
    ],
)
def test_the_challenge_echoed_verifies(body: bytes) -> None:
    """The challenge alone as text, or the JSON object {"challenge": ...}, verifies, with any
    spaces or line breaks around it."""
    assert answers_challenge(body, CHALLENGE)


@pytest.mark.parametrize(
    "body",
    [
        REQUEST,  # an endpoint that reflects the whole request
        b"you sent: " + REQUEST,
        b"challenge=" + CHALLENGE.encode(),
        CHALLENGE.encode() + CHALLENGE.encode(),
        CHALLENGE[:-1].encode(),
        orjson.dumps(CHALLENGE),  # a JSON string, not the text
        orjson.dumps({"challenge": CHALLENGE, "ok": True}),
        orjson.dumps({"data": {"challenge": CHALLENGE}}),
        orjson.dumps([{"challenge": CHALLENGE}]),
        b'{"challenge": "other", "challenge": "' + CHALLENGE.encode() + b'"}',
        orjson.dumps({"challenge": "other"}),
        b"",
    ],
)
def test_a_body_that_only_contains_the_challenge_does_not_verify(body: bytes) -> None:
    """A body that holds the challenge among other things (the reflected request, a wrapper,
    extra keys, a repeated key) is not an echo, and neither is another text."""
    assert not answers_challenge(body, CHALLENGE)


def test_settle_attempt_retries_on_the_schedule_then_gives_up() -> None:
    """A failed attempt waits its turn on the schedule; once the schedule is spent, or when the
    endpoint refused for good, the event is a dead letter; a success clears nothing it needs."""
    schedule = (0.0, 10.0)
    record: dict = {"attempts": 0}
    outcome = settle_attempt(
        record, schedule, ok=False, status=503, error="busy", finished_ms=1_000, finished_at="t1"
    )
    assert outcome == "retry"
    assert 1_000 + 8_000 <= record["due_ms"] <= 1_000 + 12_000
    assert record["first_failure_ms"] == 1_000 and record["last_status"] == 503
    outcome = settle_attempt(
        record, schedule, ok=False, status=503, error="busy", finished_ms=9_000, finished_at="t2"
    )
    assert outcome == "dead" and record["dead_at"] == "t2" and record["first_failure_ms"] == 1_000
    gone: dict = {"attempts": 0}
    assert (
        settle_attempt(
            gone,
            schedule,
            ok=False,
            status=410,
            error="",
            finished_ms=1,
            finished_at="t",
            give_up=True,
        )
        == "dead"
    )
    done: dict = {"attempts": 3}
    assert (
        settle_attempt(
            done, schedule, ok=True, status=200, error=None, finished_ms=1, finished_at="t"
        )
        == "delivered"
    )
    assert done["attempts"] == 4 and "dead_at" not in done

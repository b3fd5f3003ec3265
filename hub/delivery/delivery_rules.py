"""When to try a webhook again, and when to give up: pure rules over the retry schedule; and
what counts as an endpoint's answer to the verification challenge."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import orjson

from hub.json_keys import repeated_key

JITTER = 0.2  # each delay is drawn from ±20% around its scheduled value
MAX_RETRY_AFTER_S = 86_400.0


def retry_delay(
    schedule: tuple[float, ...],
    attempts_made: int,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, after `attempts_made` attempts have failed;
    None when the schedule is spent. schedule[0] is the first attempt's delay (immediately),
    so schedule[n] is the wait after the n-th failure. A receiver's Retry-After is honoured:
    never sooner than it asks, up to a day."""
    if attempts_made >= len(schedule):
        return None
    base = schedule[attempts_made]
    delay = base * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay


def settle_attempt(
    record: dict,
    schedule: tuple[float, ...],
    *,
    ok: bool,
    status: int | None,
    error: str | None,
    finished_ms: int,
    finished_at: str,
    give_up: bool = False,
    retry_after_s: float | None = None,
) -> str:
    """Write one attempt's result into an event's delivery record and say what comes of it:
    "delivered", "retry" (with `due_ms` set from the schedule) or "dead" (the schedule is spent,
    or `give_up`: the endpoint or relay refused for good). Shared by every delivery type."""
    record["attempts"] = int(record["attempts"]) + 1
    record["last_status"] = status
    record["last_error"] = error
    if ok:
        return "delivered"
    record.setdefault("first_failure_ms", finished_ms)
    delay = retry_delay(schedule, record["attempts"], retry_after_s)
    if give_up or delay is None:
        record["dead_at"] = finished_at
        return "dead"
    record["due_ms"] = finished_ms + int(delay * 1000)
    return "retry"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header (delay-seconds or an HTTP date) as seconds from now; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def should_pause(failing_since_ms: int | None, first_failure_ms: int) -> bool:
    """A subscription is paused when an event has used its whole schedule and no delivery to
    the endpoint succeeded meanwhile: it has been failing at least since that event first
    failed."""
    return failing_since_ms is not None and failing_since_ms <= first_failure_ms


def is_success(status: int) -> bool:
    return 200 <= status < 300


def is_gone(status: int | None) -> bool:
    """410 Gone: the endpoint says it is gone for good. As Standard Webhooks advises, the
    subscription is then disabled (paused) at once instead of retried."""
    return status == 410


def answers_challenge(body: bytes, challenge: str) -> bool:
    """Whether the body of an endpoint's 2xx answer to a verification echoes `challenge` the
    way API.md defines: the challenge alone as plain text, or exactly the JSON object
    {"challenge": "<challenge>"}. An endpoint that reflects whatever it is sent (the whole
    verification request, say) has not answered, and does not verify.

    Spaces, tabs and line breaks around either form are ignored: `echo` in a shell script, or a
    framework's pretty-printed JSON, adds them without changing the answer."""
    text = body.strip(b" \t\r\n")
    if text == challenge.encode():
        return True
    try:
        answer = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return answer == {"challenge": challenge} and repeated_key(text, answer) is None

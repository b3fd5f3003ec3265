"""The hub's error answers as typed exceptions, each carrying the API's error body.

`HubError` is the base of all of them, so `except HubError` catches every failure of a call,
including `HubUnreachable` (no answer at all, status 0)."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any


class HubError(Exception):
    """An error answer. `body` is the JSON error body as sent (or one built from a non-JSON
    answer); `details` lists the problems of a 422; `retry_after` is Retry-After in seconds."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, error, message)
        self.status = status
        self.error = error
        self.message = message
        self.details = list(details or [])
        self.body = body if body is not None else {"error": error, "message": message}
        self.retry_after = retry_after
        # post_alerts: the results of the alerts handled before this error stopped it.
        self.partial_results: list[dict[str, Any]] | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.error}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable whatever a subclass's __init__ takes (e.g. across a process pool).
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[HubError], state: dict[str, Any]) -> HubError:
    error = cls.__new__(cls)
    Exception.__init__(error, state["status"], state["error"], state["message"])
    error.__dict__.update(state)
    return error


class MalformedJSON(HubError):
    """400 malformed_json: the body is not JSON, or not an object where one is needed."""


class Unauthenticated(HubError):
    """401: no token, an unknown one or a revoked one."""


class Forbidden(HubError):
    """403: the token's node lacks the role, or acts for another node."""


class NotFound(HubError):
    """404: an unknown id, or one the caller may not see."""


class Conflict(HubError):
    """409: a stale revision, or an id that exists."""


class HistoryTruncated(HubError):
    """410: a feed cursor (or SSE resume point) older than what the feed still holds."""


class PayloadTooLarge(HubError):
    """413: the body is over the hub's limit."""


class UnsupportedMediaType(HubError):
    """415: the body was not sent as application/json."""


class ValidationFailed(HubError):
    """422: the body or query breaks the schema; `details` lists every problem."""


class RateLimited(HubError):
    """429: over the node's rate (or its open event streams); see `retry_after`."""


class Unavailable(HubError):
    """503: the hub's store is unreachable; nothing was stored, a retry is safe."""


class HubUnreachable(HubError):
    """No answer at all: connection refused, DNS failure, timeout, connection reset."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "unreachable", message)


BY_STATUS: dict[int, type[HubError]] = {
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: HistoryTruncated,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _slug(reason: str) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in reason.strip().lower()).strip("_")
    return slug or "http_error"


def error_from_answer(
    status: int, reason: str, text: str, retry_after_header: str | None = None
) -> HubError:
    """The typed error for an error answer. A body in the API's shape gives error, message and
    details; any other body (a plain-text 400 from the HTTP layer, a proxy's HTML 502) still
    gives an error named after the status and a message from the reason and the text."""
    body: dict[str, Any] | None = None
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        body = parsed
        error = parsed["error"]
        message = str(parsed.get("message") or reason or error)
        details = parsed.get("details")
        details = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    else:
        error = _slug(reason) if reason else f"http_{status}"
        snippet = " ".join(text.split())[:200]
        message = reason or f"HTTP {status}"
        if snippet and snippet.lower() != message.lower():
            message = f"{message}: {snippet}"
        details = []
        body = {"error": error, "message": message}
    if status == 400:
        cls: type[HubError] = MalformedJSON if error == "malformed_json" else HubError
    else:
        cls = BY_STATUS.get(status, HubError)
    return cls(
        status,
        error,
        message,
        details=details,
        body=body,
        retry_after=parse_retry_after(retry_after_header),
    )

"""What can go wrong, by meaning. The HTTP layer (app.py) maps each kind to a status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ProblemDetail:
    pointer: str
    rule: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"pointer": self.pointer, "rule": self.rule, "message": self.message}


def counted(n: int, noun: str) -> str:
    """ "1 problem", "2 problems"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class HubError(Exception):
    """Base of every error the hub answers with a clear body; `code` is API.md's `error` value."""

    code = "internal"

    def __init__(self, message: str, details: Sequence[ProblemDetail] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.code, "message": self.message}
        if self.details:
            out["details"] = [d.as_json() for d in self.details]
        return out


class MalformedJson(HubError):
    code = "malformed_json"


class Unauthenticated(HubError):
    """`token_error` is RFC 6750's error code for the WWW-Authenticate challenge:
    "invalid_token" for a token the hub does not accept, "invalid_request" for a malformed
    Authorization header, None when the request carried no bearer token at all."""

    code = "unauthenticated"

    def __init__(self, message: str, token_error: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.token_error = token_error


class Forbidden(HubError):
    code = "forbidden"


class NotFound(HubError):
    code = "not_found"


class MethodNotAllowed(HubError):
    """The path exists, the method does not; `allowed` lists the methods it takes."""

    code = "method_not_allowed"

    def __init__(self, message: str, allowed: str) -> None:
        super().__init__(message)
        self.allowed = allowed


class NotAcceptable(HubError):
    """No media type the client accepts is one the route answers with (TAXII's Accept)."""

    code = "not_acceptable"


class Conflict(HubError):
    code = "conflict"


class HistoryTruncated(HubError):
    code = "history_truncated"


class PayloadTooLarge(HubError):
    code = "payload_too_large"


class UnsupportedMediaType(HubError):
    code = "unsupported_media_type"


class ValidationFailed(HubError):
    code = "validation_failed"

    @classmethod
    def from_problems(cls, problems: Sequence[Any], what: str) -> ValidationFailed:
        """From validation.Problem-shaped items (pointer, rule, message) found in `what`."""
        details = [ProblemDetail(p.pointer, p.rule, p.message) for p in problems]
        return cls(f"{counted(len(details), 'problem')} in the {what}", details)

    @classmethod
    def in_query(cls, details: Sequence[ProblemDetail]) -> ValidationFailed:
        """For the problems found in a request's query parameters, counted by parameter."""
        parameters = len({d.pointer for d in details})
        return cls(counted(parameters, "bad query parameter"), details)


class RateLimited(HubError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(HubError):
    code = "unavailable"

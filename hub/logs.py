"""structlog set up once: JSON lines with ISO UTC timestamps; stdlib loggers share the renderer.

The hub's own events go straight from structlog to the stream, serialised by orjson: the stdlib
logging machinery costs tens of microseconds a line, which the one-line-per-request summary would
pay on every request. Foreign loggers (aiohttp, redis) still go through `logging`, formatted by
the same processors, to the same stream.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import orjson
import structlog

# Tracebacks as data, without local variables: a frame's locals may hold a token or a body.
_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)
_SECRET_FIELDS = frozenset({"token", "authorization", "secret", "bootstrap_token", "password"})


# A node token's secret part, and a webhook secret, wherever they turn up inside a logged text:
# a token a client put in a URL path, the start of an oversize Authorization header that
# aiohttp quotes in its error. The token's key id stays: it names the node, not its secret.
_TOKEN_SECRET = re.compile(r"(ah_[0-9a-f]{16}\.)[A-Za-z0-9_\-]+")
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")
# An Authorization value quoted in a message (aiohttp quotes the start of an oversize header).
_CREDENTIALS = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s'\"]+")
_CREDENTIALS_HINTS = ("earer", "EARER", "asic", "ASIC")
_known_secrets: tuple[str, ...] = ()  # literal secrets (the bootstrap token), set at start


def hide_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Mask any field that names a secret, so that a careless log call cannot leak one."""
    for key in _SECRET_FIELDS.intersection(event_dict):
        event_dict[key] = "***"
    return event_dict


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if "ah_" in value:
            value = _TOKEN_SECRET.sub(r"\1***", value)
        if "whsec_" in value:
            value = _WEBHOOK_SECRET.sub("whsec_***", value)
        if any(hint in value for hint in _CREDENTIALS_HINTS):
            value = _CREDENTIALS.sub(r"\1\2***", value)
        for secret in _known_secrets:
            if secret in value:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def hide_literal(secret: str) -> None:
    """Mask `secret` (a token made after logging was configured) wherever it would appear."""
    global _known_secrets
    _known_secrets = (*_known_secrets, secret)


def scrub_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Mask token and webhook secrets inside any text of the event, tracebacks included (so it
    runs after they are rendered as data). Plain str values are checked with a substring test
    first: the per-request summary line pays a few `in` checks, not a regex."""
    return {key: _scrub(value) for key, value in event_dict.items()}


def _stdlib_logger_name(logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    record = event_dict.get("_record")
    if record is not None:
        event_dict["logger_name"] = record.name
    return event_dict


def _to_json(event_dict: Any, **_kw: Any) -> str:
    return orjson.dumps(event_dict, default=str).decode()


def configure_logging(
    level: str = "info", stream: TextIO | None = None, secrets: Iterable[str | None] = ()
) -> None:
    """Route structlog and the stdlib loggers (aiohttp, redis) through one JSON renderer;
    `secrets` (the bootstrap token) are masked wherever they would appear."""
    global _known_secrets
    _known_secrets = tuple(s for s in secrets if s)
    out = stream or sys.stderr
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        hide_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            _TRACEBACKS,
            scrub_secrets,
            structlog.processors.JSONRenderer(serializer=_to_json),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=out),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _stdlib_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _TRACEBACKS,
            scrub_secrets,
            structlog.processors.JSONRenderer(serializer=_to_json),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # aiohttp's access log repeats our one summary line per request.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    """A logger whose events carry `logger_name: name`."""
    return structlog.get_logger(logger_name=name)

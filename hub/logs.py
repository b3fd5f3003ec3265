"""structlog set up once: JSON lines with ISO UTC timestamps; stdlib loggers share the renderer.

The hub's own events go straight from structlog to the stream, serialised by orjson: the stdlib
logging machinery costs tens of microseconds a line, which the one-line-per-request summary would
pay on every request. Foreign loggers (aiohttp, redis) still go through `logging`, formatted by
the same processors, to the same stream.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog

# Tracebacks as data, without local variables: a frame's locals may hold a token or a body.
_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)
_SECRET_FIELDS = frozenset({"token", "authorization", "secret", "bootstrap_token", "password"})


def hide_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Mask any field that names a secret, so that a careless log call cannot leak one."""
    for key in _SECRET_FIELDS.intersection(event_dict):
        event_dict[key] = "***"
    return event_dict


def _stdlib_logger_name(logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    record = event_dict.get("_record")
    if record is not None:
        event_dict["logger_name"] = record.name
    return event_dict


def _to_json(event_dict: Any, **_kw: Any) -> str:
    return orjson.dumps(event_dict, default=str).decode()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog and the stdlib loggers (aiohttp, redis) through one JSON renderer."""
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

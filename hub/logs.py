"""structlog set up once: JSON lines with ISO UTC timestamps; stdlib loggers share the renderer."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_FIELDS = frozenset({"token", "authorization", "secret", "bootstrap_token", "password"})


def hide_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Mask any field that names a secret, so that a careless log call cannot leak one."""
    for key in _SECRET_FIELDS.intersection(event_dict):
        event_dict[key] = "***"
    return event_dict


def configure_logging(level: str = "info", stream: Any = None) -> None:
    """Route structlog and the stdlib loggers (aiohttp, redis) through one JSON renderer."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        hide_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # aiohttp's access log repeats our one summary line per request.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)

"""`GET /metrics`: Prometheus text exposition, no authentication (like /healthz, the operator's
network decides who may scrape)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.exceptions
from aiohttp import web

from hub import status
from hub.context import HUB, Hub
from hub.logs import get_logger

log = get_logger("hub.api_metrics")

PING_TIMEOUT_S = 1.0
STATUS_TIMEOUT_S = 5.0
# What generate_latest writes. prometheus-client's CONTENT_TYPE_LATEST now names text format
# 1.0.0 (UTF-8 metric names), which this output does not use and older scrapers do not accept.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def _status(hub: Hub) -> dict[str, Any] | None:
    """The status document, or None when Redis does not answer: the scrape still answers with
    the process's own counters and `alerthub_redis_up 0`."""
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            started = time.perf_counter()
            await hub.redis.ping()
        hub.metrics.redis_roundtrip.observe(time.perf_counter() - started)
        async with asyncio.timeout(STATUS_TIMEOUT_S):
            return await status.collect_status(hub)
    except (redis.exceptions.RedisError, OSError, TimeoutError) as e:
        log.warning("metrics_redis_unavailable", error=type(e).__name__)
        return None


async def metrics(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    body = hub.metrics.render(await _status(hub))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def routes() -> list[web.RouteDef]:
    return [web.get("/metrics", metrics, allow_head=False)]

"""`GET /metrics`: Prometheus text exposition, for the operator token only. The Redis-derived
gauges name every subscription and move with each delivery (a RED alert moves the lag of exactly
the subscriptions that received it), so they are not for whoever can reach the port."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.exceptions
from aiohttp import web

from hub.context import Hub, caller
from hub.logs import get_logger
from hub.ops import status

log = get_logger("hub.api_metrics")

OPERATOR = "operator"
PING_TIMEOUT_S = 1.0
STATUS_TIMEOUT_S = 5.0
# What generate_latest writes. prometheus-client's CONTENT_TYPE_LATEST now names text format
# 1.0.0 (UTF-8 metric names), which this output does not use and older scrapers do not accept.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REDIS_DOWN = (redis.exceptions.RedisError, OSError, TimeoutError)


async def _ping(hub: Hub) -> bool:
    """One PING, timed into `alerthub_redis_roundtrip_seconds` at every scrape, cached or not."""
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            started = time.perf_counter()
            await hub.redis.ping()
    except REDIS_DOWN as e:
        log.warning("metrics_redis_unavailable", error=type(e).__name__)
        return False
    hub.metrics.redis_roundtrip.observe(time.perf_counter() - started)
    return True


async def _read_status(hub: Hub) -> dict[str, Any] | None:
    """The status document, or None when Redis does not answer in time."""
    hub.metrics.status_reads.inc()
    try:
        async with asyncio.timeout(STATUS_TIMEOUT_S):
            return await status.collect_status(hub)
    except REDIS_DOWN as e:
        log.warning("metrics_redis_unavailable", error=type(e).__name__)
        return None


async def _snapshot(hub: Hub) -> tuple[dict[str, Any] | None, float | None]:
    """The status document (read at most every few seconds per process) and its age; None when
    Redis does not answer this scrape's PING: the scrape still answers with the process's own
    counters and `alerthub_redis_up 0`, never with gauges kept from before."""
    if not await _ping(hub):
        return None, None
    return await hub.metrics.snapshots.get(lambda: _read_status(hub))


async def metrics(request: web.Request) -> web.Response:
    hub, _ = await caller(request, OPERATOR)
    body = hub.metrics.render(*await _snapshot(hub))
    return web.Response(
        body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/metrics", metrics, allow_head=False)]

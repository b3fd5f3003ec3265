"""Health, readiness and the published schemas: no authentication."""

from __future__ import annotations

import asyncio

import redis.exceptions
from aiohttp import web

from hub.api.web_io import json_response
from hub.context import HUB
from hub.errors import NotFound, Unavailable


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when Redis answers (embedded or not) and, in a process whose role runs delivery,
    its fan-out loop runs (an `api` process runs none: `fanout` is `none` there)."""
    hub = request.app[HUB]
    try:
        async with asyncio.timeout(1.0):
            await hub.redis.ping()
    except (redis.exceptions.RedisError, OSError, TimeoutError) as e:
        raise Unavailable("Redis does not answer") from e
    role = hub.settings.role
    if role == "api":
        return json_response({"status": "ready", "redis": "ok", "fanout": "none", "role": role})
    if hub.fanout_task is None or hub.fanout_task.done():
        raise Unavailable("the fan-out loop of this process is not running")
    return json_response({"status": "ready", "redis": "ok", "fanout": "running", "role": role})


async def list_schemas(request: web.Request) -> web.Response:
    schemas = request.app[HUB].schemas
    return json_response(
        {"schemas": [{"name": n, "url": f"/v1/schemas/{n}"} for n in schemas.names()]}
    )


async def get_schema(request: web.Request) -> web.Response:
    schemas = request.app[HUB].schemas
    name = request.match_info["name"].removesuffix(".json").removesuffix(".schema")
    try:
        document = schemas.document(name)
    except KeyError:
        raise NotFound(f"no schema {name}") from None
    return json_response(document, headers={"Cache-Control": "public, max-age=300"})


def probe_routes() -> list[web.RouteDef]:
    """The probes, which every role serves."""
    return [
        web.get("/healthz", healthz, allow_head=False),
        web.get("/readyz", readyz, allow_head=False),
    ]


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/schemas", list_schemas, allow_head=False),
        web.get("/v1/schemas/{name}", get_schema, allow_head=False),
    ]

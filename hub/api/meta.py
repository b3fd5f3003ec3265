"""Health, readiness and the published schemas: no authentication."""

from __future__ import annotations

import asyncio

import redis.exceptions
from aiohttp import web

from hub.api.web_io import json_response
from hub.context import HUB
from hub.errors import NotFound, Unavailable
from hub.store.connect import server_role


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when Redis answers (embedded or not) as a primary; in a process that takes posts,
    with at least ALERTHUB_MIN_REPLICAS_ACK replicas online; and, in a process whose role runs
    delivery, its fan-out loop runs (an `api` process runs none: `fanout` is `none` there)."""
    hub = request.app[HUB]
    try:
        async with asyncio.timeout(1.0):
            server = await server_role(hub.redis)
    except (redis.exceptions.RedisError, OSError, TimeoutError) as e:
        raise Unavailable("Redis does not answer") from e
    if not server.is_primary:
        # A primary demoted by a failover still answers, but refuses every write.
        raise Unavailable("the Redis the hub reaches is a replica, not the primary")
    role = hub.settings.role
    wanted = hub.settings.min_replicas_ack if role != "delivery" else 0
    if server.connected_replicas < wanted:
        raise Unavailable(
            f"{server.connected_replicas} of the {wanted} replicas that must hold each alert"
            " (ALERTHUB_MIN_REPLICAS_ACK) are attached to the primary"
        )
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

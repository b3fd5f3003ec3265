"""HTTP handlers for nodes (operator only): add, list, revoke."""

from __future__ import annotations

import structlog
from aiohttp import web

from hub.api.web_io import json_response, read_json_object
from hub.context import caller
from hub.errors import Conflict, NotFound, ValidationFailed
from hub.nodes import OPERATOR_NODE_ID


async def create_node(request: web.Request) -> web.Response:
    hub, operator = await caller(request, "operator")
    body = await read_json_object(request, hub.settings.max_body_bytes)
    problems = hub.schemas.problems("node", body)
    if problems:
        raise ValidationFailed.from_problems(problems, "node")
    try:
        # Logged (node_registered), shown on the status page and announced to the nodes of
        # its country: a new node is never a quiet way to a country's restricted alerts.
        node, token = await hub.nodes.create(body, registered_by=operator.id)
    except KeyError:
        raise Conflict(f"a node {body['id']} exists (or existed: ids are never reused)") from None
    structlog.contextvars.bind_contextvars(created_node=node.id)
    return json_response({**node.as_json(), "token": token}, status=201)


async def list_nodes(request: web.Request) -> web.Response:
    hub, _ = await caller(request, "operator")
    return json_response({"nodes": [n.as_json() for n in await hub.nodes.list()]})


async def revoke_node(request: web.Request) -> web.Response:
    hub, _ = await caller(request, "operator")
    node_id = request.match_info["node_id"]
    if node_id == OPERATOR_NODE_ID:
        raise Conflict("the bootstrap operator is revoked by unsetting ALERTHUB_BOOTSTRAP_TOKEN")
    if await hub.nodes.revoke(node_id) == "missing":
        raise NotFound(f"no node {node_id}")
    structlog.contextvars.bind_contextvars(revoked_node=node_id)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/nodes", create_node),
        web.get("/v1/nodes", list_nodes, allow_head=False),
        web.delete("/v1/nodes/{node_id}", revoke_node),
    ]

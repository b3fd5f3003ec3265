"""`POST /v1/imports/misp`: MISP events (one, a list, or MISP's `{"response": [...]}`) posted as
alerts of the calling node. Each event is converted (hub/interop/misp_import.py) and then takes
the ordinary ingest path of the batch route: validation, dedup, one atomic store, fan-out; each
succeeds or fails on its own, and every error points into the posted MISP JSON."""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog
from aiohttp import web

from hub.api.alerts import UNKNOWN_KIND, _count_refused, store_each
from hub.api.web_io import json_response, parse_json, read_body, require_json_media_type
from hub.auth import require_role
from hub.context import HUB
from hub.errors import HubError
from hub.interop.misp_import import Converted, alert_of, events_of


async def import_misp(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    identity = await hub.auth.identify(request.headers.get("Authorization"))
    try:
        require_role(identity.node, "publish")
        require_json_media_type(request)
        found = events_of(parse_json(await read_body(request, hub.settings.max_batch_bytes)))
    except HubError as e:
        # Refused whole, as a batch is: its events were never looked at.
        await hub.auth.confirm(identity)
        await _count_refused(hub, identity.node.id, Counter({(e.code, UNKNOWN_KIND): 1}))
        raise
    try:
        await hub.auth.confirm(identity, cost=len(found))
    except HubError as e:
        await _count_refused(hub, identity.node.id, Counter({(e.code, UNKNOWN_KIND): len(found)}))
        raise
    converted: list[Converted | None] = []
    alerts: list[Any] = []
    for base, event in found:
        try:
            done = alert_of(event, base)
        except HubError as e:
            converted.append(None)
            alerts.append(e)
        else:
            converted.append(done)
            alerts.append(done.alert)

    def explain(index: int, error: HubError) -> dict[str, Any]:
        done = converted[index]
        return done.refusal(error) if done is not None else error.body()

    results = await store_each(hub, identity, alerts, explain)
    for result, done, (base, event) in zip(results, converted, found, strict=True):
        result["pointer"] = base
        uuid = event.get("uuid") if isinstance(event, dict) else None
        if isinstance(uuid, str):
            result["uuid"] = uuid
        if done is not None and done.skipped:
            result["skipped"] = done.skipped
    structlog.contextvars.bind_contextvars(batch_size=len(found))
    return json_response({"results": results})


def routes() -> list[web.RouteDef]:
    return [web.post("/v1/imports/misp", import_misp)]

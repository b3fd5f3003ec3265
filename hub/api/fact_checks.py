"""HTTP handlers for fact-checks: post one on an alert, retract it, and read an alert's
fact-checks as schema.org ClaimReview JSON-LD."""

from __future__ import annotations

import orjson
import structlog
from aiohttp import web

from hub.api.web_io import (
    json_response,
    parse_json_object,
    read_body,
    read_json_object,
    require_json_media_type,
)
from hub.context import Hub, caller
from hub.errors import ValidationFailed
from hub.ingest.alert_views import load_alerts
from hub.ingest.claimreview import claim_review
from hub.nodes import Node
from hub.policy import may_see

JSON_LD = "application/ld+json"


async def post_fact_check(request: web.Request) -> web.Response:
    hub, node = await caller(request, "fact-check")
    body = await read_json_object(request, hub.settings.max_body_bytes)
    problems = hub.schemas.problems("fact-check", body)
    if problems:
        raise ValidationFailed.from_problems(problems, "fact-check")
    alert = await hub.views.visible(request.match_info["hub_id"], node)
    outcome = await hub.fact_checks.submit(body, node, alert.hub_id)
    structlog.contextvars.bind_contextvars(
        fact_check_id=outcome.fact_check_id, outcome=outcome.status
    )
    return json_response(outcome.as_json(), status=201 if outcome.status == "created" else 200)


async def retract_fact_check(request: web.Request) -> web.Response:
    hub, node = await caller(request, "fact-check")
    reason = ""
    raw = await read_body(request, hub.settings.max_body_bytes)
    if raw.strip():
        require_json_media_type(request)
        request_body = parse_json_object(raw)
        problems = hub.schemas.problems("retract", request_body)
        if problems:
            raise ValidationFailed.from_problems(problems, "retraction")
        reason = request_body.get("reason", "")
    alert = await hub.views.visible(request.match_info["hub_id"], node)
    fact_check_id = request.match_info["fact_check_id"]
    await hub.fact_checks.retract(fact_check_id, alert.hub_id, node, reason)
    return json_response({"fact_check_id": fact_check_id, "status": "retracted"})


async def get_claimreview(request: web.Request) -> web.Response:
    """One ClaimReview per live fact-check of the alert's cluster that the caller may see."""
    hub, node = await caller(request)
    alert = await hub.views.visible(request.match_info["hub_id"], node)
    found = (await hub.fact_checks.of_clusters([alert.cluster_id], node))[alert.cluster_id]
    public = await _public_appearances(hub, alert.cluster_id, node)
    reviews = [claim_review(f, public) for f in found if f.active]
    return web.Response(body=orjson.dumps(reviews), content_type=JSON_LD, charset="utf-8")


async def _public_appearances(hub: Hub, cluster_id: str, node: Node) -> list[str]:
    """The URLs of the cluster's TLP:CLEAR live reports that `node` may see: the only places
    a claim was seen that ClaimReview markup, made to be published, may name."""
    members = [m.decode() for m in await hub.redis.lrange(hub.keys.cluster(cluster_id), 0, -1)]
    urls: list[str] = []
    for report in await load_alerts(hub.redis, hub.keys, members):
        if (
            report is not None
            and report.sharing.tlp == "CLEAR"
            and report.status != "retracted"
            and may_see(report.sharing, node)
        ):
            urls.extend(u for u in report.doc.get("urls", ()) if isinstance(u, str))
    return list(dict.fromkeys(urls))


def routes() -> list[web.RouteDef]:
    one = "/v1/alerts/{hub_id}"
    return [
        web.post(f"{one}/fact-checks", post_fact_check),
        web.post(f"{one}/fact-checks/{{fact_check_id}}/retract", retract_fact_check),
        web.get(f"{one}/claimreview", get_claimreview, allow_head=False),
    ]

"""Operations for operators: the hub's status, and why a subscription did or did not receive
an alert."""

from __future__ import annotations

from aiohttp import web

from hub.api.web_io import json_response
from hub.context import caller
from hub.errors import NotFound
from hub.ops.explain import Fanned, WebhookState, explain
from hub.ops.status import collect_status

OPERATOR = "operator"


async def get_status(request: web.Request) -> web.Response:
    hub, _ = await caller(request, OPERATOR)
    return json_response(await collect_status(hub), headers={"Cache-Control": "no-store"})


async def explain_delivery(request: web.Request) -> web.Response:
    """Operator only, and only for an alert the operator may see: the answer names the alert's
    sharing decision, which must not reach anyone the sender did not share it with."""
    hub, operator = await caller(request, OPERATOR)
    sub_id = request.match_info["subscription_id"]
    sub = await hub.subscriptions.get(sub_id)
    if sub is None:
        raise NotFound(f"no subscription {sub_id}")
    alert = await hub.views.visible(request.match_info["hub_id"], operator)
    owner = await hub.nodes.get(sub.owner)
    logged_as = await hub.redis.hget(hub.keys.alert(alert.hub_id), "logged_as")
    event_id = logged_as.decode() if logged_as else None
    async with hub.redis.pipeline(transaction=False) as pipe:
        pipe.hexists(hub.keys.feed_state(sub.id), f"h:{alert.hub_id}")
        pipe.hexists(hub.keys.dead_letters(sub.id), event_id or "-")
        pipe.zscore(hub.keys.retries(sub.id), event_id or "-")
        received, dead, retry_at = await pipe.execute()
    delivery = None
    if sub.is_webhook and received:
        delivery = WebhookState(dead_letter=bool(dead), retrying=retry_at is not None)
    return json_response(explain(sub, owner, alert, Fanned(bool(received), event_id, delivery)))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/status", get_status, allow_head=False),
        web.get(
            "/v1/subscriptions/{subscription_id}/explain/{hub_id}",
            explain_delivery,
            allow_head=False,
        ),
    ]

"""A pull subscription as a MISP feed: what MISP's "Add feed" (source format "MISP Feed") reads,
`manifest.json`, one `{event uuid}.json` per alert and `hashes.csv`, under
/v1/subscriptions/{id}/misp/. The feed holds the alerts the subscription was given, as they are
now, that its owner may see now (and, when an operator reads it, the operator too): the filter
was applied at fan-out and the sharing policy is applied again on every read.

MISP sends the feed's "Headers" setting as is, so a CERT types `Authorization: <token>`; both
that bare form and `Authorization: Bearer <token>` are accepted here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from hub.api.subscriptions import _readers
from hub.api.web_io import json_response, query_problems
from hub.context import HUB, Hub
from hub.delivery.subscriptions import Subscription
from hub.errors import NotFound, ValidationFailed
from hub.ids import is_ulid, utc_now
from hub.ingest.alert_views import StoredAlert
from hub.interop.misp import FeedAlert, event_of, hashes_of, manifest_of, uuid_to_ulid
from hub.nodes import Node
from hub.policy import may_see

LOAD_CHUNK = 1000
HEADERS = {"Cache-Control": "private, no-cache"}


def _authorization(request: web.Request) -> str | None:
    """The Authorization header, with a bare token (MISP's feed headers) read as a bearer."""
    value = request.headers.get("Authorization")
    bare = (value or "").strip()
    # "Bearer" alone is an empty bearer (HTTP drops the space after it), not a token.
    if bare and " " not in bare and bare.lower() != "bearer":
        return f"Bearer {bare}"
    return value


async def _owned(request: web.Request) -> tuple[Hub, Node, Subscription, tuple[Node, ...]]:
    """As subscriptions._owned: the owner's or an operator's subscription, else 404; and whose
    eyes to read it with."""
    hub = request.app[HUB]
    node = await hub.auth.authenticate(_authorization(request))
    problems = query_problems(request.query, ())
    if problems:
        raise ValidationFailed.in_query(problems)
    sub_id = request.match_info["subscription_id"]
    sub = await hub.subscriptions.get(sub_id) if is_ulid(sub_id) else None
    if sub is None or (sub.owner != node.id and not node.has_role("operator")):
        raise NotFound(f"no subscription {sub_id}")
    structlog.contextvars.bind_contextvars(subscription=sub.id)
    return hub, node, sub, await _readers(hub, sub, node)


def feed_alert(alert: StoredAlert, read_at: int) -> FeedAlert:
    return FeedAlert(
        hub_id=alert.hub_id,
        doc=alert.doc,
        sender=alert.sharing.sender,
        status=alert.current_status(utc_now()),
        received_at=alert.received_at,
        changed_at=alert.retracted_at or alert.updated_at or alert.received_at,
        read_at=read_at,
    )


async def visible_alerts(
    hub: Hub, sub: Subscription, readers: tuple[Node, ...]
) -> AsyncIterator[FeedAlert]:
    """Every alert of the feed that all of `readers` may see now, in feed order."""
    read_at = int(time.time())
    hub_ids = await hub.feeds.alert_ids(sub.id)
    for start in range(0, len(hub_ids), LOAD_CHUNK):
        chunk = hub_ids[start : start + LOAD_CHUNK]
        loaded = await hub.feeds.alerts(chunk)
        for hub_id in chunk:
            alert = loaded.get(hub_id)
            if alert is not None and all(may_see(alert.sharing, r) for r in readers):
                yield feed_alert(alert, read_at)


async def manifest(request: web.Request) -> web.Response:
    hub, _, sub, readers = await _owned(request)
    body = dict([manifest_of(alert) async for alert in visible_alerts(hub, sub, readers)])
    return json_response(body, headers=HEADERS)


async def hashes(request: web.Request) -> web.Response:
    hub, _, sub, readers = await _owned(request)
    lines = [line async for alert in visible_alerts(hub, sub, readers) for line in hashes_of(alert)]
    return web.Response(
        text="".join(f"{line}\n" for line in lines),
        content_type="text/csv",
        charset="utf-8",
        headers=HEADERS,
    )


async def event(request: web.Request) -> web.Response:
    """One event; 404, as for a uuid that never existed, for an alert the feed never had or
    that its readers may not see now."""
    hub, _, sub, readers = await _owned(request)
    event_uuid = request.match_info["event_uuid"]
    missing = NotFound(f"no event {event_uuid} in this feed")
    hub_id = uuid_to_ulid(event_uuid)
    if hub_id is None or not is_ulid(hub_id) or not await hub.feeds.has_had(sub.id, hub_id):
        raise missing
    alert = (await hub.feeds.alerts([hub_id])).get(hub_id)
    if alert is None or not all(may_see(alert.sharing, r) for r in readers):
        raise missing
    return json_response(event_of(feed_alert(alert, int(time.time()))), headers=HEADERS)


def routes() -> list[web.RouteDef]:
    base = "/v1/subscriptions/{subscription_id}/misp"
    return [
        # Before the event route, whose pattern would match it too.
        web.get(f"{base}/manifest.json", manifest, allow_head=False),
        web.get(f"{base}/hashes.csv", hashes, allow_head=False),
        web.get(f"{base}/{{event_uuid}}.json", event, allow_head=False),
    ]

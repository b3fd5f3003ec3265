"""HTTP handlers for subscriptions and their delivery: CRUD, pull, SSE and dead letters."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson
import structlog
from aiohttp import web

from hub import sse
from hub.context import Hub, caller
from hub.errors import Conflict, Forbidden, NotFound, ProblemDetail, ValidationFailed
from hub.feeds import is_event_id
from hub.filters import SubscriptionFilter
from hub.ids import is_ulid
from hub.logs import get_logger
from hub.nodes import Node
from hub.sse_slots import SseSlots
from hub.subscriptions import Subscription, new_subscription
from hub.web_io import (
    json_response,
    parse_json_object,
    query_problems,
    read_body,
    read_json_object,
    require_json_media_type,
)
from hub.webhook_urls import UnsafeWebhookUrl, check_webhook_url

MAX_FEED_PAGE = 1000
DEFAULT_FEED_PAGE = 100

log = get_logger("hub.subscriptions")


# What only a subscription's owner may change: where and what it delivers. The operator may
# pause, resume and delete, but must not redirect a partner's deliveries to itself (DESIGN.md).
OWNER_ONLY_FIELDS = ("url", "filter")


async def _body(request: web.Request, hub: Hub, schema: str) -> dict[str, Any]:
    return _checked(hub, schema, await read_json_object(request, hub.settings.max_body_bytes))


def _checked(hub: Hub, schema: str, body: dict[str, Any]) -> dict[str, Any]:
    problems = hub.schemas.problems(schema, body)
    if problems:
        raise ValidationFailed.from_problems(problems, schema.replace("-", " "))
    return body


async def _check_url(hub: Hub, url: str, pointer: str) -> None:
    try:
        await check_webhook_url(url, allow_private=hub.settings.allow_private_webhooks)
    except UnsafeWebhookUrl as e:
        raise ValidationFailed(
            "the webhook URL is refused", [ProblemDetail(pointer, "public_address", str(e))]
        ) from e


async def _owned(request: web.Request, role: str | None = None) -> tuple[Hub, Node, Subscription]:
    """The subscription named in the path, if the caller owns it or is an operator; else 404."""
    hub, node = await caller(request, role)
    sub_id = request.match_info["subscription_id"]
    sub = await hub.subscriptions.get(sub_id) if is_ulid(sub_id) else None
    if sub is None or (sub.owner != node.id and not node.has_role("operator")):
        raise NotFound(f"no subscription {sub_id}")
    structlog.contextvars.bind_contextvars(subscription=sub.id)
    return hub, node, sub


async def _readers(hub: Hub, sub: Subscription, caller: Node) -> tuple[Node, ...]:
    """Whose eyes the feed is read with: the owner's, and also the caller's when an operator
    reads another node's feed, so that it sees only what both may see."""
    owner = await hub.nodes.get(sub.owner)
    if owner is None:
        raise NotFound(f"no subscription {sub.id}")
    return (owner,) if caller.id == owner.id else (owner, caller)


async def create_subscription(request: web.Request) -> web.Response:
    hub, node = await caller(request, "subscribe")
    body = await _body(request, hub, "subscription")
    if body["delivery"]["type"] == "webhook":
        await _check_url(hub, body["delivery"]["url"], "/delivery/url")
    sub = await hub.subscriptions.create(new_subscription(node.id, body))
    structlog.contextvars.bind_contextvars(subscription=sub.id)
    out = sub.public_json()
    if sub.secret is not None:
        out["secret"] = sub.secret
    return json_response(out, status=201)


async def list_subscriptions(request: web.Request) -> web.Response:
    hub, node = await caller(request)
    _, subs = await hub.subscriptions.all()
    if not node.has_role("operator"):
        subs = [s for s in subs if s.owner == node.id]
    return json_response({"subscriptions": [s.public_json() for s in subs]})


async def get_subscription(request: web.Request) -> web.Response:
    _, _, sub = await _owned(request)
    return json_response(sub.public_json())


async def patch_subscription(request: web.Request) -> web.Response:
    hub, node, sub = await _owned(request)
    body = await read_json_object(request, hub.settings.max_body_bytes)
    # Refused for who asks before what it asks is checked: an operator learns nothing more.
    named = [field for field in OWNER_ONLY_FIELDS if field in body]
    if named and node.id != sub.owner:
        raise Forbidden(
            f"only the owner {sub.owner} may change {' or '.join(named)} of subscription "
            f"{sub.id}; an operator may only pause or resume it (status) or delete it"
        )
    body = _checked(hub, "subscription-patch", body)
    url = body.get("url")
    if url is not None:
        if not sub.is_webhook:
            raise Conflict("a pull subscription has no URL to change")
        await _check_url(hub, url, "/url")

    def change(current: Subscription) -> Subscription:
        new = current
        if "filter" in body:
            new = replace(new, filter=SubscriptionFilter.from_json(body["filter"]))
        if url is not None and url != current.url:
            reason = "waiting for the new endpoint to answer the verification challenge"
            new = replace(new, url=url, status="pending", status_reason=reason)
        wanted = body.get("status")
        if wanted == "paused" and new.status != "paused":
            new = replace(new, status="paused", status_reason="paused by request")
        elif wanted == "active" and new.status == "paused":
            # A webhook whose endpoint has not proved itself (at this URL) goes back to it.
            new = replace(new, status="active" if new.verified else "pending", status_reason=None)
        return new

    updated = await hub.subscriptions.modify(sub.id, change)
    if updated is None:
        raise NotFound(f"no subscription {sub.id}")
    if updated.url != sub.url or (updated.status == "pending" and sub.status != "pending"):
        await hub.redis.hdel(hub.keys.delivery(sub.id), "verify_attempts", "verify_next_ms")
    return json_response(updated.public_json())


async def delete_subscription(request: web.Request) -> web.Response:
    hub, _, sub = await _owned(request)
    await hub.subscriptions.delete(sub.id)
    return web.Response(status=204)


def _feed_query(request: web.Request) -> tuple[str | None, int]:
    problems = query_problems(request.query, ("after", "limit"))
    after = request.query.get("after") or None
    if after is not None and not is_event_id(after):
        problems.append(ProblemDetail("/after", "format", "must be an event id such as 1764-0"))
    limit = DEFAULT_FEED_PAGE
    if request.query.get("limit"):
        try:
            limit = int(request.query["limit"])
            if not 1 <= limit <= MAX_FEED_PAGE:
                raise ValueError
        except ValueError:
            problems.append(
                ProblemDetail("/limit", "range", f"must be a whole number 1 to {MAX_FEED_PAGE}")
            )
    if problems:
        raise ValidationFailed(f"{len(problems)} bad query parameters", problems)
    return after, limit


async def pull_feed(request: web.Request) -> web.Response:
    hub, node, sub = await _owned(request)
    after, limit = _feed_query(request)
    if after is not None:
        await hub.feeds.check_not_truncated(sub.id, after)
    entries = await hub.feeds.entries(sub.id, after, limit)
    events = await hub.feeds.events(entries, await _readers(hub, sub, node))
    if entries and node.id == sub.owner:  # an operator's look does not move the owner's lag
        await hub.feeds.note_read(sub.id, entries[-1])
    next_cursor = entries[-1].id if entries else after
    return json_response({"events": events, "next": next_cursor})


async def stream_events(request: web.Request) -> web.StreamResponse:
    hub, node, sub = await _owned(request)
    after, _ = _feed_query(request)
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    if last_event_id:
        if not is_event_id(last_event_id):
            raise ValidationFailed(
                "bad Last-Event-ID",
                [ProblemDetail("/Last-Event-ID", "format", "must be an event id from this feed")],
            )
        after = last_event_id
    readers = await _readers(hub, sub, node)
    settings = hub.settings
    slots = SseSlots(
        hub.redis, hub.keys, hub.scripts, settings.max_sse_per_node, settings.sse_heartbeat_s
    )
    # Counted against the caller: an operator watching a partner's feed uses its own slots.
    async with slots.held(node.id) as lease:
        return await sse.stream_feed(
            request,
            hub.feeds,
            hub.news,
            sub.id,
            readers,
            after,
            settings.sse_heartbeat_s,
            hub.stopping,
            owner_reading=node.id == sub.owner,
            nodes=hub.nodes,
            lease=lease,
        )


async def list_dead_letters(request: web.Request) -> web.Response:
    hub, _, sub = await _owned(request)
    rows = await hub.redis.hgetall(hub.keys.dead_letters(sub.id))
    letters = []
    for raw in rows.values():
        record = orjson.loads(raw)
        event = record["event"]
        letters.append(
            {
                "event_id": event["id"],
                "type": event["type"],
                "hub_id": event["hub_id"],
                "attempts": record.get("attempts", 0),
                "last_status": record.get("last_status"),
                "last_error": record.get("last_error", ""),
                "dead_at": record.get("dead_at", ""),
            }
        )
    letters.sort(key=lambda d: tuple(int(p) for p in d["event_id"].split("-")))
    return json_response({"dead_letters": letters})


async def replay_dead_letters(request: web.Request) -> web.Response:
    hub, _, sub = await _owned(request)
    event_ids: list[str] = []
    raw = await read_body(request, hub.settings.max_body_bytes)
    if raw.strip():
        require_json_media_type(request)
        body = parse_json_object(raw)
        given = body.get("event_ids")
        if (
            set(body) - {"event_ids"}
            or not isinstance(given, list)
            or not all(isinstance(i, str) and is_event_id(i) for i in given)
        ):
            raise ValidationFailed(
                "the body may hold only event_ids, a list of event ids",
                [ProblemDetail("/event_ids", "type", "must be a list of event ids")],
            )
        if not given:
            return json_response({"replayed": 0})
        event_ids = given
    replayed = await hub.scripts.replay_dead(
        keys=[
            hub.keys.retries(sub.id),
            hub.keys.retry_info(sub.id),
            hub.keys.dead_letters(sub.id),
        ],
        args=[time.time_ns() // 1_000_000, *event_ids],
    )
    await hub.news.publish([sub.id])
    return json_response({"replayed": int(replayed)})


def routes() -> list[web.RouteDef]:
    one = "/v1/subscriptions/{subscription_id}"
    return [
        web.post("/v1/subscriptions", create_subscription),
        web.get("/v1/subscriptions", list_subscriptions, allow_head=False),
        web.get(one, get_subscription, allow_head=False),
        web.patch(one, patch_subscription),
        web.delete(one, delete_subscription),
        web.get(f"{one}/feed", pull_feed, allow_head=False),
        web.get(f"{one}/events", stream_events, allow_head=False),
        web.get(f"{one}/dead-letters", list_dead_letters, allow_head=False),
        web.post(f"{one}/dead-letters/replay", replay_dead_letters),
    ]

"""HTTP handlers for subscriptions and their delivery: CRUD, pull, SSE and dead letters."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson
import structlog
from aiohttp import web

from hub.api.web_io import (
    json_response,
    parse_json_object,
    query_problems,
    read_body,
    read_json_object,
    require_json_media_type,
)
from hub.context import Hub, caller
from hub.delivery import sse
from hub.delivery.feed_events import is_event_id
from hub.delivery.filters import SubscriptionFilter
from hub.delivery.sse_slots import SseSlots
from hub.delivery.subscriptions import Subscription, new_subscription
from hub.delivery.webhook_urls import UnsafeWebhookUrl, check_webhook_url
from hub.errors import Conflict, Forbidden, NotFound, ProblemDetail, ValidationFailed
from hub.ids import is_ulid
from hub.logs import get_logger
from hub.nodes import Node
from hub.policy import may_see

MAX_FEED_PAGE = 1000
DEFAULT_FEED_PAGE = 100

log = get_logger("hub.subscriptions")


# What only a subscription's owner may change: where and what it delivers. The operator may
# pause, resume and delete, but must not redirect a partner's deliveries to itself (DESIGN.md).
OWNER_ONLY_FIELDS = ("url", "filter", "digest", "max_tlp")
# Said when a loopback or private webhook address is refused: what a newcomer trying a local
# receiver needs to know.
LOCAL_WEBHOOKS_HINT = (
    "a hub for tests or a closed network may allow loopback and private webhook addresses: "
    "its operator sets ALERTHUB_ALLOW_PRIVATE_WEBHOOKS=true"
)


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
        message = str(e)
        if e.local:
            message += f" ({LOCAL_WEBHOOKS_HINT})"
        raise ValidationFailed(
            "the webhook URL is refused", [ProblemDetail(pointer, "public_address", message)]
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
    if body["delivery"]["type"] == "email" and hub.settings.smtp_url is None:
        raise ValidationFailed(
            "this hub sends no e-mail",
            [ProblemDetail("/delivery/type", "enum", "the hub has no SMTP relay configured")],
        )
    link_base = hub.settings.public_url or str(request.url.origin())
    sub = await hub.subscriptions.create(new_subscription(node.id, body, link_base))
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
            raise Conflict(f"a {sub.delivery_type} subscription has no URL to change")
        await _check_url(hub, url, "/url")
    if ("digest" in body or "max_tlp" in body) and not sub.is_email:
        raise Conflict("digest and max_tlp are for e-mail subscriptions only")

    def change(current: Subscription) -> Subscription:
        new = current
        if "filter" in body:
            new = replace(new, filter=SubscriptionFilter.from_json(body["filter"]))
        if url is not None and url != current.url:
            reason = "waiting for the new endpoint to answer the verification challenge"
            new = replace(new, url=url, status="pending", status_reason=reason)
        if "digest" in body:
            new = replace(new, digest=body["digest"])
        if "max_tlp" in body:
            new = replace(new, max_tlp=body["max_tlp"])
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
        if updated.is_email:  # back to pending: a new confirmation goes to the address
            await hub.redis.delete(hub.keys.mail_tokens(sub.id))
    return json_response(updated.public_json())


async def delete_subscription(request: web.Request) -> web.Response:
    hub, _, sub = await _owned(request)
    await hub.subscriptions.delete(sub.id)
    return web.Response(status=204)


def _feed_query(
    request: web.Request, extra: tuple[str, ...] = (), default_limit: int = DEFAULT_FEED_PAGE
) -> tuple[str | None, int]:
    """`after` and `limit` from the query (and `extra` parameters allowed, read elsewhere)."""
    problems = query_problems(request.query, ("after", "limit", *extra))
    after = request.query.get("after") or None
    if after is not None and not is_event_id(after):
        problems.append(ProblemDetail("/after", "format", "must be an event id such as 1764-0"))
    limit = default_limit
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
        raise ValidationFailed.in_query(problems)
    return after, limit


async def pull_feed(request: web.Request) -> web.Response:
    hub, node, sub = await _owned(request)
    after, limit = _feed_query(request)
    if after is not None:
        await hub.feeds.check_not_truncated(sub.id, after)
    page = await hub.feeds.page(sub.id, after, limit, await _readers(hub, sub, node))
    # An operator's look does not move the owner's lag.
    if page.last_read is not None and node.id == sub.owner:
        await hub.feeds.note_read(sub.id, page.last_read)
    return json_response({"events": page.events, "next": page.next})


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


async def _dead_letters(
    hub: Hub, sub: Subscription, caller: Node
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The subscription's dead letters (event id -> record) that the owner and the caller may
    both see now (about such an alert, or about no alert), and the ids of the others, which are
    answered as if they did not exist."""
    rows = await hub.redis.hgetall(hub.keys.dead_letters(sub.id))
    records = {event_id.decode(): orjson.loads(raw) for event_id, raw in rows.items()}
    readers = await _readers(hub, sub, caller)
    hub_ids = [r["event"].get("hub_id") for r in records.values()]
    alerts = await hub.feeds.alerts([h for h in hub_ids if h])
    visible: dict[str, dict[str, Any]] = {}
    hidden: list[str] = []
    for event_id, record in records.items():
        hub_id = record["event"].get("hub_id")
        if not hub_id:  # a node.registered event: about no alert
            visible[event_id] = record
            continue
        alert = alerts.get(hub_id)
        if alert is not None and all(may_see(alert.sharing, r) for r in readers):
            visible[event_id] = record
        else:
            hidden.append(event_id)
    return visible, hidden


async def list_dead_letters(request: web.Request) -> web.Response:
    hub, node, sub = await _owned(request)
    letters = []
    visible, _ = await _dead_letters(hub, sub, node)
    for record in visible.values():
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
    """Replays the named dead letters, or every one; the answer counts those the caller may
    see (a named one it may not see is not replayed, as for an id that does not exist). An
    operator's replay of every letter replays those it may not see too, since delivering them
    is the owner's due, but does not count them."""
    hub, node, sub = await _owned(request)
    event_ids: list[str] | None = None
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
    visible, hidden = await _dead_letters(hub, sub, node)
    replayed = await _replay(hub, sub, [i for i in event_ids or visible if i in visible])
    if event_ids is None and hidden:
        await _replay(hub, sub, hidden)
    await hub.news.publish([sub.id])
    return json_response({"replayed": replayed})


async def _replay(hub: Hub, sub: Subscription, event_ids: list[str]) -> int:
    """Replay the named dead letters; how many were still there to replay."""
    if not event_ids:
        return 0
    replayed = await hub.scripts.replay_dead(
        keys=[
            hub.keys.retries(sub.id),
            hub.keys.retry_info(sub.id),
            hub.keys.dead_letters(sub.id),
        ],
        args=[time.time_ns() // 1_000_000, *event_ids],
    )
    return int(replayed)


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

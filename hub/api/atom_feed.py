"""A subscription's feed as Atom, for feed readers, and its read-only feed key.

Feed readers cannot send a bearer header, so a subscription's owner may ask for a feed key: a
secret that reads this one feed and nothing else, with the owner's eyes (never wider), shown
once in the URL it returns, kept only as a SHA-256 digest, revoked at once by DELETE (or by
another POST, which replaces it). The key travels in the query string, which the hub never logs
(request lines are logged by path alone)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import structlog
from aiohttp import web

from hub.api.subscriptions import _feed_query, _owned, _readers
from hub.api.web_io import json_response, parse_json_object, read_body, require_json_media_type
from hub.auth import rate_limited
from hub.context import HUB, Hub
from hub.delivery.atom import FeedHead, render_feed
from hub.delivery.subscriptions import Subscription
from hub.errors import Forbidden, Unauthenticated, ValidationFailed
from hub.ids import is_ulid
from hub.nodes import Node

ATOM = "application/atom+xml"
KEY_PREFIX = "fk_"
FEED_DEFAULT_LIMIT = 50


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def base_url(hub: Hub, request: web.Request) -> str:
    """Where people reach the hub: ALERTHUB_PUBLIC_URL, else this request's origin."""
    return hub.settings.public_url or str(request.url.origin())


async def _by_key(request: web.Request, key: str) -> tuple[Hub, Subscription, tuple[Node, ...]]:
    """The subscription a feed key opens, read with its owner's eyes; 401 for any key that
    does not open this subscription's feed now (wrong, revoked, or its owner revoked)."""
    hub = request.app[HUB]
    sub_id = request.match_info["subscription_id"]
    refused = Unauthenticated("unknown or revoked feed key")
    if not is_ulid(sub_id) or not key.startswith(KEY_PREFIX) or len(key) > 128:
        raise refused
    stored = await hub.redis.get(hub.keys.feed_key(sub_id))
    if stored is None or not hmac.compare_digest(stored.decode(), _digest(key)):
        raise refused
    sub = await hub.subscriptions.get(sub_id)
    owner = await hub.nodes.get(sub.owner) if sub is not None else None
    if sub is None or owner is None or owner.revoked_at is not None:
        raise refused
    # Counted against the owner's rate, as its own requests are.
    rate_key = hub.keys.rate(owner.id, int(time.time() // 60))
    used = await hub.redis.incr(rate_key)
    if used == 1:
        await hub.redis.expire(rate_key, 120)
    if used > hub.settings.rate_limit_per_minute:
        raise rate_limited()
    structlog.contextvars.bind_contextvars(subscription=sub.id, node=f"feed-key:{owner.id}")
    return hub, sub, (owner,)


async def atom_feed(request: web.Request) -> web.Response:
    """The feed's newest events, or those after `after` (the pull feed's cursor), as Atom."""
    key = request.query.get("key")
    if key is not None and "Authorization" not in request.headers:
        hub, sub, readers = await _by_key(request, key)
    else:
        hub, node, sub = await _owned(request)
        readers = await _readers(hub, sub, node)
    after, limit = _feed_query(request, extra=("key",), default_limit=FEED_DEFAULT_LIMIT)
    if after is not None:
        await hub.feeds.check_not_truncated(sub.id, after)
        page = await hub.feeds.page(sub.id, after, limit, readers)
        events = list(reversed(page.events))
    else:
        events = await hub.feeds.latest(sub.id, limit, readers)
    base = base_url(hub, request)
    own_url = f"{base}/v1/subscriptions/{sub.id}/feed.atom"
    head = FeedHead(
        feed_id=f"tag:alerthub,2026:subscription:{sub.id}",
        title=f"alerthub: subscription {sub.id} of {sub.owner}",
        self_url=own_url + (f"?key={key}" if key is not None else ""),
        alert_url=f"{base}/v1/alerts/",
        updated=events[0]["occurred_at"] if events else sub.created_at,
    )
    return web.Response(
        body=render_feed(head, events),
        content_type=ATOM,
        charset="utf-8",
        headers={"Cache-Control": "private, no-cache", "X-Robots-Tag": "noindex"},
    )


async def create_feed_key(request: web.Request) -> web.Response:
    """A new feed key for the caller's own subscription, replacing any earlier one: the owner
    only, since the key reads with the owner's eyes (an operator gets 403)."""
    hub, node, sub = await _owned(request)
    raw = await read_body(request, hub.settings.max_body_bytes)
    if raw.strip():
        require_json_media_type(request)
        if parse_json_object(raw):
            raise ValidationFailed("this request takes no fields; send {} or nothing")
    if node.id != sub.owner:
        raise Forbidden(
            f"only the owner {sub.owner} may make a feed key for subscription {sub.id}: the key "
            "reads the feed as its owner does"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await hub.redis.set(hub.keys.feed_key(sub.id), _digest(key))
    url = f"{base_url(hub, request)}/v1/subscriptions/{sub.id}/feed.atom?key={key}"
    return json_response(
        {"subscription_id": sub.id, "feed_url": url, "key": key},
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def delete_feed_key(request: web.Request) -> web.Response:
    """Revoke the subscription's feed key at once (the owner, or an operator)."""
    hub, _, sub = await _owned(request)
    await hub.redis.delete(hub.keys.feed_key(sub.id))
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    one = "/v1/subscriptions/{subscription_id}"
    return [
        web.get(f"{one}/feed.atom", atom_feed, allow_head=False),
        web.post(f"{one}/feed-key", create_feed_key),
        web.delete(f"{one}/feed-key", delete_feed_key),
    ]

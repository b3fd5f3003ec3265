"""The links in e-mails: confirming an address (double opt-in) and unsubscribing. No bearer
token: the token in the path is the capability, and an unknown one is answered exactly as a
wrong one. A GET only shows a page with a button; the change is a POST, so that the link
scanners of mail systems, which open every link, neither confirm nor unsubscribe anyone. The
unsubscribe POST is also the one-click unsubscribe of RFC 8058 (List-Unsubscribe-Post)."""

from __future__ import annotations

import hmac
from dataclasses import replace
from html import escape

import structlog
from aiohttp import web

from hub.api.web_io import parse_json_object, read_body
from hub.context import HUB, Hub
from hub.delivery.email_delivery import token_digest, unsubscribe_matches
from hub.delivery.subscriptions import Subscription
from hub.ids import is_ulid, now_rfc3339

NOT_FOUND_TEXT = "This link is not (or no longer) valid."


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex"></head>'
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _button(action: str, label: str) -> str:
    return (
        f'<form method="post" action="{escape(action)}">'
        f'<button type="submit">{escape(label)}</button></form>'
    )


async def _drain(request: web.Request, hub: Hub) -> None:
    """Read (and bound) the body of a POST: a one-click unsubscribe sends a form; JSON, if sent,
    must at least be JSON."""
    raw = await read_body(request, hub.settings.max_body_bytes)
    if raw.strip() and request.content_type == "application/json":
        parse_json_object(raw)


async def _pending(hub: Hub, token: str) -> Subscription | None:
    """The e-mail subscription a confirmation token belongs to, if the token is its current one
    and was sent to the address it has now."""
    sub_id, dot, secret = token.partition(".")
    if not dot or not is_ulid(sub_id) or not secret or len(secret) > 100:
        return None
    stored, sent_for = await hub.redis.hmget(
        hub.keys.mail_tokens(sub_id), ["confirm_hash", "confirm_for"]
    )
    if stored is None or not hmac.compare_digest(stored.decode(), token_digest(secret)):
        return None
    sub = await hub.subscriptions.get(sub_id)
    if sub is None or not sub.is_email or sent_for is None or sent_for.decode() != sub.email_to:
        return None
    return sub


async def _subscribed(hub: Hub, token: str) -> Subscription | None:
    sub_id = token.partition(".")[0]
    sub = await hub.subscriptions.get(sub_id) if is_ulid(sub_id) and len(token) < 200 else None
    if sub is None or not sub.is_email or not unsubscribe_matches(hub.cursor_key, token, sub):
        return None
    return sub


async def show_confirm(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    sub = await _pending(hub, request.match_info["token"])
    if sub is None:
        return _page("alerthub", f"<p>{NOT_FOUND_TEXT}</p>", 404)
    return _page(
        "Confirm your alerthub e-mails",
        f"<p>{escape(sub.owner)} asked for the alerts of subscription {escape(sub.id)} to be sent "
        f"to <strong>{escape(sub.email_to or '')}</strong> ({escape(sub.digest or '')}, labels up "
        f"to TLP:{escape(sub.max_tlp or '')}).</p>" + _button(request.path, "Yes, send them"),
    )


async def confirm(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    await _drain(request, hub)
    sub = await _pending(hub, request.match_info["token"])
    if sub is None:
        return _page("alerthub", f"<p>{NOT_FOUND_TEXT}</p>", 404)
    address = sub.email_to

    def change(current: Subscription) -> Subscription | None:
        if current.email_to != address:
            return None
        status = "active" if current.status == "pending" else current.status
        reason = None if current.status == "pending" else current.status_reason
        return replace(current, confirmed_to=address, status=status, status_reason=reason)

    await hub.subscriptions.modify(sub.id, change)
    await hub.redis.hdel(hub.keys.mail_tokens(sub.id), "confirm_hash")
    await hub.redis.hset(hub.keys.mail_tokens(sub.id), "confirmed_at", now_rfc3339())
    await hub.news.publish([sub.id])
    structlog.contextvars.bind_contextvars(subscription=sub.id, outcome="confirmed")
    return _page(
        "Confirmed",
        f"<p>{escape(address or '')} will receive the alerts of subscription {escape(sub.id)}. "
        "Every e-mail has a link to stop them.</p>",
    )


async def show_unsubscribe(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    sub = await _subscribed(hub, request.match_info["token"])
    if sub is None:
        return _page("alerthub", f"<p>{NOT_FOUND_TEXT}</p>", 404)
    return _page(
        "Stop alerthub e-mails",
        f"<p>Stop sending the alerts of subscription {escape(sub.id)} to "
        f"<strong>{escape(sub.email_to or '')}</strong>?</p>" + _button(request.path, "Stop them"),
    )


async def unsubscribe(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    await _drain(request, hub)
    sub = await _subscribed(hub, request.match_info["token"])
    if sub is None:
        return _page("alerthub", f"<p>{NOT_FOUND_TEXT}</p>", 404)
    address = sub.email_to
    reason = f"the recipient unsubscribed on {now_rfc3339()}; resuming asks it to confirm again"

    def change(current: Subscription) -> Subscription | None:
        if current.email_to != address:
            return None
        return replace(current, status="paused", status_reason=reason, confirmed_to=None)

    await hub.subscriptions.modify(sub.id, change)
    await hub.redis.delete(hub.keys.mail_tokens(sub.id))
    structlog.contextvars.bind_contextvars(subscription=sub.id, outcome="unsubscribed")
    return _page(
        "Unsubscribed",
        f"<p>No more alerts of subscription {escape(sub.id)} will be sent to "
        f"{escape(address or '')}.</p>",
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/email/confirm/{token}", show_confirm, allow_head=False),
        web.post("/v1/email/confirm/{token}", confirm),
        web.get("/v1/email/unsubscribe/{token}", show_unsubscribe, allow_head=False),
        web.post("/v1/email/unsubscribe/{token}", unsubscribe),
    ]

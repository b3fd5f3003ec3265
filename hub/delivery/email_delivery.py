"""E-mail delivery: one worker per e-mail subscription under that subscription's delivery lease,
with the webhook machinery's state, retries and dead letters ({sub:<id>}:delivery, retries,
retry-info, dead-letters; delivery_done_lua), so that a failing address behaves exactly as a
failing endpoint: an SMTP 4xx (or no answer) is tried again on the retry schedule, a 5xx is a
dead letter and pauses the subscription at once (as a webhook's 410 does), and a schedule spent
without a success dead-letters and pauses.

Double opt-in: a pending subscription's worker sends one confirmation message; nothing else goes
to the address until its link is followed (api/email_links.py). The relay is ALERTHUB_SMTP_URL,
reached with aiosmtplib over STARTTLS or TLS.

Digests: `hourly` and `daily` subscriptions get, once a clock hour or a UTC day has ended, one
message with every event of it (retries of a digest go out together again). TLP:CLEAR and GREEN
only unless the owner set `max_tlp`; RED never."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import ssl
import time
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import orjson
from redis.exceptions import RedisError

from hub.delivery.delivery_rules import retry_delay, settle_attempt, should_pause
from hub.delivery.feed_events import FeedEntry, Rendered
from hub.delivery.feed_news import first_of
from hub.delivery.mail import (
    POLICY,
    TLP_ORDER,
    Envelope,
    confirmation_message,
    digest_message,
    event_message,
    header_text,
)
from hub.delivery.subscriptions import Subscription
from hub.delivery.webhooks import Delivery, record_outcome
from hub.ids import now_rfc3339
from hub.logs import get_logger
from hub.nodes import Node
from hub.settings import LOOPBACK_HOSTS
from hub.store.leases import Lease

log = get_logger("hub.email")

BATCH = 200
IDLE_LOOK_S = 1.0
MAX_SESSIONS = 16
CONFIRM_VALID_MS = 7 * 86_400 * 1000
DIGEST_PERIODS_S = {"hourly": 3600.0, "daily": 86_400.0}


class SmtpSettingsError(ValueError):
    """ALERTHUB_SMTP_URL cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class MailAttempt:
    """What one SMTP session came to: a reply code (None when there was no answer)."""

    code: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        """A 5xx: the relay will not take this message, whatever we do."""
        return self.code is not None and self.code >= 500


class SmtpRelay:
    """The relay in ALERTHUB_SMTP_URL: smtp://[user[:password]@]host[:587] with STARTTLS
    required, smtps://…[:465] with TLS from the first byte, or smtp://…?tls=off for a relay on
    this host only (loopback). The password may come from ALERTHUB_SMTP_PASSWORD_FILE instead
    of the URL; ALERTHUB_SMTP_CA_FILE names the CA that signs the relay's certificate."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        password_file: Path | None = None,
        ca_file: Path | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SmtpSettingsError("ALERTHUB_SMTP_URL must be smtp://host or smtps://host")
        tls = parse_qs(parts.query).get("tls", ["on"])[0]
        self.implicit_tls = parts.scheme == "smtps"
        self.plain = tls == "off"
        if self.plain and (self.implicit_tls or parts.hostname not in LOOPBACK_HOSTS):
            raise SmtpSettingsError("tls=off is for a relay on this host (smtp://localhost) only")
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self.username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if password_file is not None:
            password = password_file.read_text(encoding="utf-8").strip()
        self._password = password
        self._timeout_s = timeout_s
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._sessions = asyncio.Semaphore(MAX_SESSIONS)

    async def send(self, message: EmailMessage) -> MailAttempt:
        """Send `message` in one SMTP session; its reply code, never an exception."""
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.implicit_tls,
            start_tls=False if self.plain else (None if self.implicit_tls else True),
            tls_context=None if self.plain else self._tls,
            timeout=self._timeout_s,
        )
        async with self._sessions:
            try:
                async with asyncio.timeout(3 * self._timeout_s):
                    await client.connect()
                    try:
                        if self.username is not None and self._password is not None:
                            await client.login(self.username, self._password)
                        errors, _ = await client.sendmail(
                            parseaddr(str(message["From"]))[1],
                            [parseaddr(str(message["To"]))[1]],
                            message.as_bytes(policy=POLICY),
                        )
                    finally:
                        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                            await client.quit()
            except aiosmtplib.SMTPRecipientsRefused as e:
                refused = e.recipients[0] if e.recipients else None
                code = refused.code if refused is not None else 550
                said = header_text(refused.message if refused else "")
                return MailAttempt(code, f"the relay refused the address: {code} {said}")
            except aiosmtplib.SMTPResponseException as e:
                return MailAttempt(e.code, f"the relay answered {e.code} {header_text(e.message)}")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
                return MailAttempt(None, f"{type(e).__name__}: {header_text(e, 200)}")
        if errors:
            code, text = next(iter(errors.values()))
            return MailAttempt(code, f"the relay refused the address: {code} {header_text(text)}")
        return MailAttempt(250, "")


def relay_from(settings: Any) -> SmtpRelay | None:
    """The relay the settings name, or None when the hub sends no e-mail."""
    if settings.smtp_url is None:
        return None
    return SmtpRelay(
        settings.smtp_url,
        settings.smtp_timeout_s,
        settings.smtp_password_file,
        settings.smtp_ca_file,
    )


# -- links ------------------------------------------------------------------------------------


def unsubscribe_token(key: bytes, sub_id: str, address: str) -> str:
    """The token of a subscription's unsubscribe link for `address`: derived (keyed) rather
    than stored, so every message can carry it; it stops working when the address changes."""
    tag = hmac.new(key, f"unsubscribe|{sub_id}|{address}".encode(), hashlib.sha256).digest()
    return f"{sub_id}.{tag[:18].hex()}"


def unsubscribe_matches(key: bytes, token: str, sub: Subscription) -> bool:
    if sub.email_to is None:
        return False
    return hmac.compare_digest(token, unsubscribe_token(key, sub.id, sub.email_to))


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


# -- the worker -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailContext:
    """What every e-mail worker of one process shares, beside the webhook machinery's."""

    relay: SmtpRelay
    mail_from: str
    link_key: bytes  # keys the unsubscribe links (the hub's cursor key)
    public_url: str | None
    digest_periods_s: dict[str, float]


def _ms() -> int:
    return time.time_ns() // 1_000_000


def tlp_allowed(tlp: str, max_tlp: str | None) -> bool:
    """Whether an alert labelled `tlp` may go by e-mail under `max_tlp` (RED never)."""
    limit = max_tlp or "GREEN"
    if tlp not in TLP_ORDER or tlp == "RED" or limit not in TLP_ORDER:
        return False
    return TLP_ORDER.index(tlp) <= TLP_ORDER.index(limit)


def period_of(event_id: str, period_ms: int) -> int:
    return int(event_id.split("-", 1)[0]) // period_ms


def period_label(digest: str, period: int, period_ms: int) -> str:
    start = time.gmtime(period * period_ms / 1000)
    if digest == "daily":
        return f"daily digest for {time.strftime('%Y-%m-%d', start)}"
    return f"hourly digest for {time.strftime('%Y-%m-%d %H:00 UTC', start)}"


class EmailWorker:
    def __init__(self, ctx: Delivery, mail: MailContext, sub_id: str, lease: Lease) -> None:
        self._ctx = ctx
        self._mail = mail
        self._sub_id = sub_id
        self._lease = lease
        self._renew_at = 0.0
        self._cursor: str | None = None
        self._cursor_read = False

    async def _keep_lease(self) -> bool:
        if time.monotonic() < self._renew_at:
            return True
        if not await self._lease.hold():
            return False
        self._renew_at = time.monotonic() + self._lease.ttl_ms / 3000
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        ctx = self._ctx
        try:
            with ctx.news.listening(self._sub_id) as woken:
                while not stopping.is_set() and await self._keep_lease():
                    # Read afresh each round: a confirmation or an unsubscribe from a link
                    # changes the subscription outside this worker.
                    sub = await ctx.subscriptions.get(self._sub_id)
                    if sub is None or not sub.is_email or sub.status == "paused":
                        return
                    woken.clear()
                    if sub.status == "pending" or not sub.verified:
                        wait = await self._confirm(sub)
                    else:
                        wait = await self._deliver_some(sub, stopping)
                    if wait is None:
                        return
                    if wait > 0:
                        await first_of(woken, stopping, wait)
        except (RedisError, OSError) as e:
            log.warning("email_worker_redis_error", subscription=self._sub_id, error=str(e)[:200])
        except Exception:
            log.exception("email_worker_failed", subscription=self._sub_id)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await self._lease.release()

    def _envelope(self, sub: Subscription) -> Envelope:
        base = self._mail.public_url or sub.link_base or ""
        assert sub.email_to is not None
        token = unsubscribe_token(self._mail.link_key, sub.id, sub.email_to)
        return Envelope(
            sender=self._mail.mail_from,
            to=sub.email_to,
            subscription_id=sub.id,
            unsubscribe_url=f"{base}/v1/email/unsubscribe/{token}",
            alert_url=f"{base}/v1/alerts/",
        )

    async def _confirm(self, sub: Subscription) -> float | None:
        """Send the confirmation message once per address (retried on 4xx), then wait for its
        link to be followed; a 5xx, or a week without a confirmation, pauses."""
        ctx = self._ctx
        key = ctx.keys.mail_tokens(sub.id)
        state = await ctx.redis.hgetall(key)
        text = {k.decode(): v.decode() for k, v in state.items()}
        if text.get("confirm_sent_to") == sub.email_to:
            if _ms() - int(text.get("confirm_sent_ms", "0")) > CONFIRM_VALID_MS:
                await self._pause(sub, "the address did not confirm within 7 days")
                return None
            return IDLE_LOOK_S
        if int(text.get("confirm_next_ms", "0")) > _ms():
            return min(IDLE_LOOK_S, (int(text["confirm_next_ms"]) - _ms()) / 1000)
        secret = secrets.token_urlsafe(24)
        base = self._mail.public_url or sub.link_base or ""
        owner = ctx.snapshot.owners.get(sub.owner) or await ctx.nodes.get(sub.owner)
        message = confirmation_message(
            self._envelope(sub),
            f"{base}/v1/email/confirm/{sub.id}.{secret}",
            owner.name if owner is not None else sub.owner,
            sub.digest or "immediate",
            sub.max_tlp or "GREEN",
        )
        # Stored before it is sent, so that a link followed at once is already known.
        await ctx.redis.hset(key, mapping={"confirm_hash": token_digest(secret),
                                           "confirm_for": sub.email_to or ""})  # fmt: skip
        attempt = await self._mail.relay.send(message)
        if attempt.ok:
            await ctx.redis.hset(
                key, mapping={"confirm_sent_to": sub.email_to or "", "confirm_sent_ms": _ms()}
            )
            await ctx.redis.hdel(key, "confirm_attempts", "confirm_next_ms")
            log.info("email_confirmation_sent", subscription=sub.id)
            return IDLE_LOOK_S
        attempts = int(text.get("confirm_attempts", "0")) + 1
        delay = retry_delay(ctx.schedule, attempts)
        log.info("email_confirmation_failed", subscription=sub.id, attempt=attempts,
                 code=attempt.code)  # fmt: skip
        if attempt.permanent or delay is None:
            await self._pause(sub, f"the confirmation could not be sent: {attempt.error}")
            return None
        next_ms = _ms() + int(delay * 1000)
        retry = {"confirm_attempts": attempts, "confirm_next_ms": next_ms}
        await ctx.redis.hset(key, mapping=retry)
        return min(IDLE_LOOK_S, delay)

    async def _pause(self, sub: Subscription, reason: str) -> None:
        def change(current: Subscription) -> Subscription | None:
            if current.status == "paused" or current.email_to != sub.email_to:
                return None
            return replace(current, status="paused", status_reason=reason)

        await self._ctx.subscriptions.modify(sub.id, change)
        log.warning("subscription_paused", subscription=sub.id, reason=reason)

    async def _deliver_some(self, sub: Subscription, stopping: asyncio.Event) -> float | None:
        """Due retries first, then new events (for a digest, those of periods that have
        ended). Returns the seconds to wait when there was nothing to do, 0 when there was,
        None when the worker should stop."""
        ctx = self._ctx
        owner = ctx.snapshot.owners.get(sub.owner) or await ctx.nodes.get(sub.owner)
        due = await ctx.redis.zrangebyscore(ctx.keys.retries(sub.id), "-inf", _ms(), 0, BATCH)
        if due:
            infos = await ctx.redis.hmget(ctx.keys.retry_info(sub.id), due)
            records = [orjson.loads(raw) for raw in infos if raw is not None]
            stale = [e for e, raw in zip(due, infos, strict=True) if raw is None]
            if stale:
                await ctx.redis.zrem(ctx.keys.retries(sub.id), *stale)
            if records:
                return await self._send(sub, owner, records, advance=False, stopping=stopping)
        if not self._cursor_read:
            cursor = await ctx.redis.hget(ctx.keys.delivery(sub.id), "cursor")
            self._cursor, self._cursor_read = (cursor.decode() if cursor else None), True
        entries = await ctx.feeds.entries(sub.id, self._cursor, BATCH)
        if not entries:
            return IDLE_LOOK_S
        period_s = self._mail.digest_periods_s.get(sub.digest or "immediate")
        if period_s is not None:
            period_ms = int(period_s * 1000)
            current = _ms() // period_ms
            entries = [e for e in entries if period_of(e.id, period_ms) < current]
            if not entries:
                return IDLE_LOOK_S
        if owner is not None:
            entries = await ctx.feeds.retyped(sub.id, entries, (owner,))
        records = [
            {"event": e.as_json(), "seq": e.seq, "attempts": 0}
            | ({"withheld": True} if e.withheld else {})
            for e in entries
        ]
        return await self._send(sub, owner, records, advance=True, stopping=stopping)

    async def _send(
        self,
        sub: Subscription,
        owner: Node | None,
        records: list[dict[str, Any]],
        advance: bool,
        stopping: asyncio.Event,
    ) -> float | None:
        """Send `records` (in feed order): one message each, or one per period for a digest,
        leaving out (as skipped) what the owner may not see now or what is above max_tlp."""
        ctx = self._ctx
        bodies = await ctx.feeds.rendered([FeedEntry.from_json(r["event"]) for r in records])
        live = owner is not None and await ctx.nodes.all_live((owner.id,))
        period_s = self._mail.digest_periods_s.get(sub.digest or "immediate")
        groups: list[list[tuple[dict[str, Any], dict[str, Any] | None]]] = []
        last_key: object = None
        for record in records:
            event = self._event_for(record, bodies.get(record["event"]["id"]), owner, live, sub)
            key = (
                period_of(record["event"]["id"], int(period_s * 1000))
                if period_s is not None
                else record["event"]["id"]
            )
            if not groups or key != last_key:
                groups.append([])
                last_key = key
            groups[-1].append((record, event))
        for group in groups:
            if stopping.is_set() or not await self._keep_lease():
                return None
            verdict = await self._send_group(sub, group, advance)
            if verdict is None:
                return None
        return 0

    def _event_for(
        self,
        record: dict[str, Any],
        rendered: Rendered | None,
        owner: Node | None,
        live: bool,
        sub: Subscription,
    ) -> dict[str, Any] | None:
        """The event to send for `record`, or None when it is not to be sent."""
        if not live or owner is None or record.get("withheld") or rendered is None:
            return None
        if not rendered.visible_to((owner,)):
            return None
        event = orjson.loads(rendered.body)
        if event["type"] != "node.registered":
            tlp = (event.get("alert") or {}).get("tlp", "RED")
            if not tlp_allowed(tlp, sub.max_tlp):
                return None
        return event

    async def _send_group(
        self,
        sub: Subscription,
        group: list[tuple[dict[str, Any], dict[str, Any] | None]],
        advance: bool,
    ) -> bool | None:
        ctx = self._ctx
        events = [event for _, event in group if event is not None]
        attempt = None
        if events:
            envelope = self._envelope(sub)
            try:
                if sub.digest in self._mail.digest_periods_s:
                    period_ms = int(self._mail.digest_periods_s[sub.digest or ""] * 1000)
                    label = period_label(
                        sub.digest or "", period_of(events[0]["id"], period_ms), period_ms
                    )
                    message = digest_message(envelope, events, label)
                else:
                    message = event_message(envelope, events[0])
            except (ValueError, TypeError) as e:  # a message that cannot be built is a dead letter
                attempt = MailAttempt(554, f"the message could not be built: {type(e).__name__}")
            else:
                attempt = await self._mail.relay.send(message)
        finished_ms = _ms()
        paused_for: str | None = None
        for record, event in group:
            if event is None or attempt is None:
                outcome = "skipped"
            else:
                outcome = settle_attempt(
                    record,
                    ctx.schedule,
                    ok=attempt.ok,
                    status=attempt.code,
                    error=attempt.error,
                    finished_ms=finished_ms,
                    finished_at=now_rfc3339(),
                    give_up=attempt.permanent,
                )
            reply = await record_outcome(
                ctx,
                self._lease,
                sub.id,
                record["event"]["id"],
                outcome,
                advance,
                finished_ms,
                record,
            )
            ctx.metrics.delivery("lost" if reply[0] == b"lost" else outcome)
            if reply[0] == b"lost":
                return None
            if advance:
                self._cursor = record["event"]["id"]
            if outcome != "skipped" and outcome != "delivered":
                log.info("email_attempt", subscription=sub.id, event_id=record["event"]["id"],
                         outcome=outcome, code=attempt.code if attempt else None)  # fmt: skip
            if outcome == "dead" and attempt is not None and attempt.permanent:
                paused_for = f"the relay refused the message for good: {attempt.error}"
            elif reply[0] == b"dead" and should_pause(
                int(reply[1]) if reply[1] else None, int(record["first_failure_ms"])
            ):
                paused_for = (
                    f"every attempt failed for a whole retry schedule; last: {attempt.error}"
                    if attempt is not None
                    else "every attempt failed for a whole retry schedule"
                )
        if paused_for is not None:
            await self._pause(sub, paused_for)
            return None
        return True

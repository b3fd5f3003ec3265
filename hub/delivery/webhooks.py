"""Webhook delivery: one worker per subscription, under that subscription's lease, so a slow,
hanging or failing endpoint holds up only itself. Each worker verifies a pending endpoint with a
challenge, then delivers the feed in order; a failed event waits in the retry set on the
schedule (with jitter, honouring Retry-After) while later events go on, and after its last try
it becomes a dead letter. Delivery is at least once: the webhook-id (the event id) lets a
receiver drop a repeat."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.delivery.delivery_rules import (
    answers_challenge,
    is_gone,
    retry_delay,
    settle_attempt,
    should_pause,
)
from hub.delivery.feed_events import FeedEntry
from hub.delivery.feed_news import FeedNews, first_of
from hub.delivery.feeds import FeedReader
from hub.delivery.subscriptions import Subscription, SubscriptionStore
from hub.delivery.webhook_sender import WebhookSender
from hub.ids import new_ulid, now_rfc3339
from hub.logs import get_logger
from hub.nodes import Node, NodeRegistry
from hub.store.batching import ScriptBatcher
from hub.store.keys import Keys
from hub.store.leases import Lease
from hub.store.scripts import Scripts

log = get_logger("hub.webhooks")

BATCH = 32
IDLE_LOOK_S = 1.0
RETRY_LOOK_MS = 1000


class DeliveryCounter(Protocol):
    """Where webhook outcomes are counted (ops.metrics.Metrics is one): delivery reports to it
    and knows nothing of how it is shown."""

    def delivery(self, outcome: str) -> None: ...


class _Uncounted:
    def delivery(self, outcome: str) -> None:
        pass


@dataclass(slots=True)
class Snapshot:
    """The subscriptions and their owners as the supervisor last read them: workers look here
    instead of asking Redis on every wake-up."""

    version: int = -1
    subs: dict[str, Subscription] = field(default_factory=dict)
    owners: dict[str, Node] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What every worker of one process shares."""

    redis: Redis
    keys: Keys
    scripts: Scripts
    subscriptions: SubscriptionStore
    nodes: NodeRegistry
    feeds: FeedReader
    news: FeedNews
    sender: WebhookSender
    schedule: tuple[float, ...]
    owner: str
    lease_ttl_ms: int
    batcher: ScriptBatcher
    snapshot: Snapshot = field(default_factory=Snapshot)
    metrics: DeliveryCounter = field(default_factory=_Uncounted)


def _ms() -> int:
    return time.time_ns() // 1_000_000


async def record_outcome(
    ctx: Delivery,
    lease: Lease,
    sub_id: str,
    event_id: str,
    outcome: str,
    advance: bool,
    finished_ms: int,
    record: dict,
) -> list:
    """Store what came of one event's delivery in one step under the subscription's lease
    (delivery_done_lua): the cursor, the retry set, a dead letter. The reply starts with b"lost"
    when another process holds the lease now and will send again. Every delivery type uses it."""
    return await ctx.batcher.call(
        ctx.scripts.delivery_done,
        keys=[
            lease.key,
            ctx.keys.delivery(sub_id),
            ctx.keys.retries(sub_id),
            ctx.keys.retry_info(sub_id),
            ctx.keys.dead_letters(sub_id),
            ctx.keys.deleted(sub_id),
        ],
        args=[
            lease.owner,
            event_id,
            outcome,
            "1" if advance else "0",
            finished_ms,
            now_rfc3339(),
            record.get("due_ms", 0),
            orjson.dumps(record),
            record.get("seq", 0),
        ],
    )


class WebhookWorker:
    def __init__(self, ctx: Delivery, sub_id: str, lease: Lease) -> None:
        self._ctx = ctx
        self._sub_id = sub_id
        self._lease = lease
        self._renew_at = 0.0
        self._sub: Subscription | None = None
        self._seen_version = -2
        self._cursor: str | None = None
        self._cursor_read = False
        self._retries_due_ms = 0  # when to look at the retry set again (ms)
        # Whether the endpoint acknowledged its last event: only then may it post in the
        # sender's trusted lane (a verification proves intent, not good behaviour).
        self._trusted = False

    async def _keep_lease(self) -> bool:
        """Renew the lease when a third of its time has passed; False once it is lost."""
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
                    sub = await self._current()
                    if sub is None or not sub.is_webhook or sub.status == "paused":
                        return
                    woken.clear()
                    if sub.status == "pending":
                        wait = await self._verify(sub)
                    else:
                        wait = await self._deliver_some(sub, stopping)
                    if wait is None:
                        return
                    if wait > 0:
                        await first_of(woken, stopping, wait)
        except (RedisError, OSError) as e:
            log.warning("webhook_worker_redis_error", subscription=self._sub_id, error=str(e)[:200])
        except Exception:
            # The supervisor starts a new worker at its next scan.
            log.exception("webhook_worker_failed", subscription=self._sub_id)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await self._lease.release()

    async def _current(self) -> Subscription | None:
        """This worker's subscription: from the supervisor's snapshot when it has changed,
        else as the worker last knew it (its own changes included)."""
        snapshot = self._ctx.snapshot
        if self._sub is None and self._seen_version == -2:
            # A new worker asks Redis: the snapshot that started it may predate a pause by
            # the worker before it (a 410, a spent schedule), and would revive it.
            self._seen_version = snapshot.version
            self._sub = await self._ctx.subscriptions.get(self._sub_id)
        elif self._sub is None or snapshot.version != self._seen_version:
            self._seen_version = snapshot.version
            self._sub = snapshot.subs.get(self._sub_id)
            if self._sub is None:  # not in the snapshot yet, or gone: ask Redis
                self._sub = await self._ctx.subscriptions.get(self._sub_id)
        return self._sub

    async def _verify(self, sub: Subscription) -> float | None:
        """Send the challenge; the subscription turns active when the endpoint answers 2xx
        with the challenge echoed as API.md defines (delivery_rules.answers_challenge)."""
        ctx = self._ctx
        key = ctx.keys.delivery(sub.id)
        attempts_raw, next_raw = await ctx.redis.hmget(key, ["verify_attempts", "verify_next_ms"])
        if next_raw is not None and int(next_raw) > _ms():
            return min(IDLE_LOOK_S, (int(next_raw) - _ms()) / 1000)
        challenge = secrets.token_urlsafe(24)
        msg_id = f"verify_{new_ulid()}"
        body = orjson.dumps(
            {
                "type": "hub.verification",
                "id": msg_id,
                "subscription_id": sub.id,
                "challenge": challenge,
                "occurred_at": now_rfc3339(),
            }
        )
        assert sub.url is not None and sub.secret is not None
        attempt = await ctx.sender.post(sub.url, sub.secret, msg_id, body)
        if not attempt.tried:
            return 0
        if attempt.ok and answers_challenge(attempt.body, challenge):
            await ctx.redis.hdel(key, "verify_attempts", "verify_next_ms")
            self._sub = await ctx.subscriptions.modify(sub.id, _activate_if(sub.url))
            log.info("webhook_verified", subscription=sub.id)
            return 0
        attempts = int(attempts_raw or 0) + 1
        delay = retry_delay(ctx.schedule, attempts, attempt.retry_after_s)
        reason = attempt.error or "the answer was not the challenge echoed"
        log.info(
            "webhook_verification_failed", subscription=sub.id, attempt=attempts, reason=reason
        )
        if delay is None or is_gone(attempt.status):
            await ctx.subscriptions.modify(
                sub.id,
                _pause_if(sub.url, f"the endpoint never answered the challenge: {reason}"),
            )
            return None
        await ctx.scripts.verify_failed(
            keys=[key, ctx.keys.deleted(sub.id)], args=[attempts, _ms() + int(delay * 1000)]
        )
        return min(IDLE_LOOK_S, delay)

    async def _deliver_some(self, sub: Subscription, stopping: asyncio.Event) -> float | None:
        """Due retries first, then a batch of new events, one POST at a time in feed order.
        Returns the seconds to wait when there was nothing to do, 0 when there was, None when
        the worker should stop (lease lost, subscription paused)."""
        ctx = self._ctx
        owner = ctx.snapshot.owners.get(sub.owner) or await ctx.nodes.get(sub.owner)
        due = []
        if _ms() >= self._retries_due_ms:
            due = await ctx.redis.zrangebyscore(ctx.keys.retries(sub.id), "-inf", _ms(), 0, BATCH)
            if not due:
                # Look again when the nearest retry is due, or in a second at the latest (a
                # replay adds retries due at once).
                nearest = await ctx.redis.zrange(ctx.keys.retries(sub.id), 0, 0, withscores=True)
                soonest = int(nearest[0][1]) if nearest else _ms() + RETRY_LOOK_MS
                self._retries_due_ms = min(_ms() + RETRY_LOOK_MS, soonest)
        if due:
            infos = await ctx.redis.hmget(ctx.keys.retry_info(sub.id), due)
            records = [orjson.loads(raw) for raw in infos if raw is not None]
            stale = [event_id for event_id, raw in zip(due, infos, strict=True) if raw is None]
            if stale:  # finished meanwhile: scores with no record behind them
                await ctx.redis.zrem(ctx.keys.retries(sub.id), *stale)
            advance = False
        else:
            if not self._cursor_read:
                cursor = await ctx.redis.hget(ctx.keys.delivery(sub.id), "cursor")
                self._cursor, self._cursor_read = (cursor.decode() if cursor else None), True
            entries = await ctx.feeds.entries(sub.id, self._cursor, BATCH)
            if not entries:
                return max(0.001, min(IDLE_LOOK_S, (self._retries_due_ms - _ms()) / 1000))
            if owner is not None:
                entries = await ctx.feeds.retyped(sub.id, entries, (owner,))
            records = [
                {"event": e.as_json(), "seq": e.seq, "attempts": 0}
                | ({"withheld": True} if e.withheld else {})
                for e in entries
            ]
            advance = True
        bodies: dict[str, bytes | None] = {}
        if owner is not None:
            feed_entries = [FeedEntry.from_json(r["event"]) for r in records]
            bodies = await ctx.feeds.personal(feed_entries, (owner,))
        for record in records:
            if stopping.is_set() or not await self._keep_lease():
                return None
            verdict = await self._attempt(sub, owner, record, bodies, advance)
            if verdict is None:
                return None
            if verdict is False:  # not sent for want of a slot: start again from this one
                return 0
        return 0

    async def _attempt(
        self,
        sub: Subscription,
        owner: Node | None,
        record: dict,
        bodies: dict[str, bytes | None],
        advance: bool,
    ) -> bool | None:
        """POST one event and record what came of it; None when the worker must stop, False
        when the event was not sent (no free slot) and nothing was recorded."""
        ctx = self._ctx
        entry = FeedEntry.from_json(record["event"])
        body = bodies.get(entry.id)  # None: gone, or not for the owner (now)
        finished_ms = _ms()
        attempt = None
        if (
            owner is None
            or owner.revoked_at is not None
            or record.get("withheld")
            or body is None
            # Asked of Redis before each send: the owner may have been revoked a moment ago,
            # which the supervisor's snapshot learns only at its next scan.
            or not await ctx.nodes.all_live((owner.id,))
        ):
            outcome = "skipped"
        else:
            assert sub.url is not None and sub.secret is not None
            attempt = await ctx.sender.post(
                sub.url, sub.secret, entry.id, body, trusted=self._trusted
            )
            if not attempt.tried:
                return False
            self._trusted = attempt.ok
            finished_ms = _ms()
            outcome = settle_attempt(
                record,
                ctx.schedule,
                ok=attempt.ok,
                status=attempt.status,
                error=attempt.error,
                finished_ms=finished_ms,
                finished_at=now_rfc3339(),
                give_up=is_gone(attempt.status),
                retry_after_s=attempt.retry_after_s,
            )
        reply = await record_outcome(
            ctx, self._lease, sub.id, entry.id, outcome, advance, finished_ms, record
        )
        if outcome != "delivered":
            log.info(
                "webhook_attempt",
                subscription=sub.id,
                event_id=entry.id,
                outcome=outcome,
                status=attempt.status if attempt else None,
                attempts=record["attempts"],
            )
        # "lost": the POST went out but another process now holds the lease and will send again.
        ctx.metrics.delivery("lost" if reply[0] == b"lost" else outcome)
        if reply[0] == b"lost":
            return None
        if reply[-1]:  # events trimmed from the feed before they could be sent
            log.warning("webhook_history_truncated", subscription=sub.id, skipped=reply[-1])
        if advance:
            self._cursor = entry.id
        if outcome == "retry":
            self._retries_due_ms = min(self._retries_due_ms or record["due_ms"], record["due_ms"])
        if attempt is not None and is_gone(attempt.status):
            reason = "the endpoint answered 410 Gone: it wants no more deliveries"
            await ctx.subscriptions.modify(sub.id, _pause_if(sub.url, reason))
            log.warning("subscription_paused", subscription=sub.id, reason=reason)
            return None
        if reply[0] == b"dead" and should_pause(
            int(reply[1]) if reply[1] else None, int(record["first_failure_ms"])
        ):
            last_error = record["last_error"]
            reason = f"every attempt failed for a whole retry schedule; last: {last_error}"
            await ctx.subscriptions.modify(sub.id, _pause_if(sub.url, reason))
            log.warning("subscription_paused", subscription=sub.id, reason=reason)
            return None
        return True


def _activate_if(url: str | None):
    def change(current: Subscription) -> Subscription | None:
        if current.url != url:
            return None
        status = "active" if current.status == "pending" else current.status
        return replace(current, status=status, status_reason=None, verified_url=url)

    return change


def _pause_if(url: str | None, reason: str):
    def change(current: Subscription) -> Subscription | None:
        if current.status == "paused" or current.url != url:
            return None
        return replace(current, status="paused", status_reason=reason)

    return change

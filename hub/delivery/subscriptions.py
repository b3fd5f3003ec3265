"""Subscriptions: who wants which alerts, and how they are delivered. Kept in one Redis hash so
that the fan-out reads them all at once, with a version counter so caches know when to reload."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from hub.delivery.filters import SubscriptionFilter
from hub.delivery.signing import new_secret
from hub.ids import new_ulid, now_rfc3339
from hub.store.keys import Keys
from hub.store.scripts import Scripts

STATUSES = ("pending", "active", "paused")
# How long a deleted subscription's marker (Keys.deleted) outlives it: far longer than any
# fan-out batch or webhook attempt still under way with the old subscription list can last.
DELETED_MARKER_TTL_S = 86_400


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    owner: str
    filter: SubscriptionFilter
    delivery_type: str  # "webhook" | "pull" | "email"
    url: str | None
    status: str  # "pending" | "active" | "paused"
    status_reason: str | None
    created_at: str
    updated_at: str
    # The newest event log id when the subscription was made: it gets the events after it.
    start_after: str = "0-0"
    secret: str | None = field(default=None, repr=False)
    # The URL whose endpoint last answered the challenge: only it may be sent alerts.
    verified_url: str | None = None
    # E-mail: the address, how often (immediate | hourly | daily), the most restrictive TLP
    # label sent (GREEN unless the owner opted in to AMBER), and the address that followed the
    # confirmation link (double opt-in: only it may be sent alerts).
    email_to: str | None = None
    digest: str | None = None
    max_tlp: str | None = None
    confirmed_to: str | None = None
    # Where the links in its e-mails lead (ALERTHUB_PUBLIC_URL, else the origin it was made at).
    link_base: str | None = None

    @property
    def verified(self) -> bool:
        if self.is_email:
            return self.email_to is not None and self.confirmed_to == self.email_to
        return not self.is_webhook or (self.url is not None and self.verified_url == self.url)

    @property
    def is_webhook(self) -> bool:
        return self.delivery_type == "webhook"

    @property
    def is_email(self) -> bool:
        return self.delivery_type == "email"

    def public_json(self) -> dict[str, Any]:
        delivery: dict[str, Any] = {"type": self.delivery_type}
        if self.url is not None:
            delivery["url"] = self.url
        if self.is_email:
            delivery.update(to=self.email_to, digest=self.digest, max_tlp=self.max_tlp)
        return {
            "id": self.id,
            "owner": self.owner,
            "filter": self.filter.as_json(),
            "delivery": delivery,
            "status": self.status,
            "status_reason": self.status_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def stored_json(self) -> bytes:
        data = self.public_json()
        data["secret"] = self.secret
        data["start_after"] = self.start_after
        data["verified_url"] = self.verified_url
        data["confirmed_to"] = self.confirmed_to
        data["link_base"] = self.link_base
        return orjson.dumps(data)

    @classmethod
    def from_stored(cls, raw: bytes | str) -> Subscription:
        data = orjson.loads(raw)
        delivery = data["delivery"]
        return cls(
            id=data["id"],
            owner=data["owner"],
            filter=SubscriptionFilter.from_json(data["filter"]),
            delivery_type=delivery["type"],
            url=delivery.get("url"),
            status=data["status"],
            status_reason=data.get("status_reason"),
            created_at=data["created_at"],
            updated_at=data["updated_at"],
            start_after=data.get("start_after", "0-0"),
            secret=data.get("secret"),
            verified_url=data.get("verified_url"),
            email_to=delivery.get("to"),
            digest=delivery.get("digest"),
            max_tlp=delivery.get("max_tlp"),
            confirmed_to=data.get("confirmed_to"),
            link_base=data.get("link_base"),
        )


def new_subscription(
    owner: str, body: dict[str, Any], link_base: str | None = None
) -> Subscription:
    """A subscription from a schema-valid POST body: webhooks start pending with a new secret,
    e-mail pending until the address follows its confirmation link."""
    delivery = body["delivery"]
    webhook = delivery["type"] == "webhook"
    now = now_rfc3339()
    if delivery["type"] == "email":
        return Subscription(
            id=new_ulid(),
            owner=owner,
            filter=SubscriptionFilter.from_json(body.get("filter")),
            delivery_type="email",
            url=None,
            status="pending",
            status_reason="waiting for the address to follow the confirmation link sent to it",
            created_at=now,
            updated_at=now,
            email_to=delivery["to"],
            digest=delivery.get("digest", "immediate"),
            max_tlp=delivery.get("max_tlp", "GREEN"),
            link_base=link_base,
        )
    return Subscription(
        id=new_ulid(),
        owner=owner,
        filter=SubscriptionFilter.from_json(body.get("filter")),
        delivery_type=delivery["type"],
        url=delivery.get("url") if webhook else None,
        status="pending" if webhook else "active",
        status_reason="waiting for the endpoint to answer the verification challenge"
        if webhook
        else None,
        created_at=now,
        updated_at=now,
        secret=new_secret() if webhook else None,
    )


class SubscriptionStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts

    async def create(self, sub: Subscription) -> Subscription:
        """Store `sub`, starting after the newest event logged (read in the same step)."""
        start_after = await self._scripts.create_subscription(
            keys=[self._keys.subscriptions, self._keys.subscriptions_version, self._keys.events],
            args=[sub.id, sub.stored_json()],
        )
        return replace(sub, start_after=start_after.decode())

    async def get(self, sub_id: str) -> Subscription | None:
        raw = await self._redis.hget(self._keys.subscriptions, sub_id)
        return Subscription.from_stored(raw) if raw is not None else None

    async def all(self) -> tuple[int, list[Subscription]]:
        """The version and every subscription, read together."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._keys.subscriptions_version)
            pipe.hvals(self._keys.subscriptions)
            version, rows = await pipe.execute()
        subs = sorted((Subscription.from_stored(r) for r in rows), key=lambda s: s.id)
        return int(version or 0), subs

    async def version(self) -> int:
        return int(await self._redis.get(self._keys.subscriptions_version) or 0)

    async def modify(
        self, sub_id: str, change: Callable[[Subscription], Subscription | None]
    ) -> Subscription | None:
        """Apply `change` atomically (optimistic: retried when another write came between).
        `change` returns the new subscription, or None to leave it as it is. Returns the
        subscription as stored afterwards, or None when it does not exist."""
        key = self._keys.subscriptions
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, sub_id)
                    if raw is None:
                        return None
                    current = Subscription.from_stored(raw)
                    changed = change(current)
                    if changed is None or changed == current:
                        return current
                    changed = replace(changed, updated_at=now_rfc3339())
                    pipe.multi()
                    pipe.hset(key, sub_id, changed.stored_json())
                    pipe.incr(self._keys.subscriptions_version)
                    await pipe.execute()
                    return changed
                except WatchError:
                    continue

    async def delete(self, sub_id: str) -> bool:
        """Delete the subscription and its keys. Its keys go first, with a marker that keeps a
        fan-out or delivery still at work with it from writing them again; the record last, so
        that a crash half-way leaves a subscription to delete again rather than keys that no
        record leads to."""
        if not await self._redis.hexists(self._keys.subscriptions, sub_id):
            return False
        # One slot per subscription: its keys go in one call (the record is in {core}).
        await self._scripts.delete_subscription_keys(
            keys=[self._keys.deleted(sub_id), *self._keys.subscription_keys(sub_id)],
            args=[DELETED_MARKER_TTL_S],
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys.subscriptions, sub_id)
            pipe.incr(self._keys.subscriptions_version)
            removed, _ = await pipe.execute()
        return bool(removed)

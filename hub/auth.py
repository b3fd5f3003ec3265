"""Who is calling. `identify` turns a bearer token into a node, from a per-process cache of node
profiles (a profile never changes; only revocation does); `confirm` checks in Redis that the token
is still live and counts the request against the node's rate. The ingest path skips `confirm`:
the store script does both in the same step as the write (see StoreGuard)."""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from dataclasses import dataclass, field

import orjson
import structlog
from redis.asyncio import Redis

from hub.errors import Forbidden, RateLimited, Unauthenticated
from hub.nodes import Node, secret_matches, split_token
from hub.store.keys import Keys
from hub.store.scripts import Scripts
from hub.store.stats import LastSeen

_BEARER = "bearer "
_BASIC = "basic "
RATE_COUNTER_TTL_S = 120
PROFILE_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Identity:
    node: Node
    key_id: str | None  # None for the bootstrap operator, whose token lives in the environment


@dataclass(frozen=True, slots=True)
class StoreGuard:
    """What the store script needs to refuse a revoked token and count the rate atomically."""

    token_key: str
    rate_key: str
    rate_limit: int  # 0: already counted by the caller
    rate_ttl_s: int = RATE_COUNTER_TTL_S


@dataclass(slots=True)
class Authenticator:
    redis: Redis
    keys: Keys
    scripts: Scripts
    rate_limit_per_minute: int
    bootstrap_token: str | None = None
    operator: Node | None = None
    last_seen: LastSeen | None = None
    _profiles: dict[str, tuple[str, Node]] = field(default_factory=dict)

    async def identify(self, authorization: str | None, allow_basic: bool = False) -> Identity:
        """The node a well-formed token with the right secret speaks for. The token may have been
        revoked since it was cached: `confirm` or the store script catches that. With
        `allow_basic` (the TAXII routes: TAXII clients speak HTTP Basic), the token may also
        come as the password of Basic credentials whose user is the token's node id."""
        if allow_basic and (authorization or "")[: len(_BASIC)].lower() == _BASIC:
            user, token = _basic(authorization or "")
            identity = await self.identify(f"Bearer {token}")
            if user and user != identity.node.id:
                raise Unauthenticated("the Basic user name must be the token's node id")
            return identity
        token = _bearer(authorization)
        if (
            self.bootstrap_token is not None
            and self.operator is not None
            and hmac.compare_digest(token.encode(), self.bootstrap_token.encode())
        ):
            structlog.contextvars.bind_contextvars(node=self.operator.id)
            await self._saw(self.operator)
            return Identity(self.operator, None)
        parts = split_token(token)
        if parts is None:
            raise Unauthenticated("the bearer token is not a valid hub token")
        key_id, secret = parts
        profile = self._profiles.get(key_id)
        if profile is None:
            profile = await self._lookup(key_id)
        secret_hash, node = profile
        if not secret_matches(secret, secret_hash):
            raise Unauthenticated("unknown or revoked token")
        structlog.contextvars.bind_contextvars(node=node.id)
        await self._saw(node)
        return Identity(node, key_id)

    async def _saw(self, node: Node) -> None:
        if self.last_seen is not None:
            await self.last_seen.saw(node.id)

    async def _lookup(self, key_id: str) -> tuple[str, Node]:
        found = await self.scripts.lookup_token(
            keys=[self.keys.token(key_id)], args=[self.keys.core]
        )
        if not found:
            raise Unauthenticated("unknown or revoked token")
        profile = (found[0].decode(), Node.from_json(orjson.loads(found[1])))
        if len(self._profiles) >= PROFILE_CACHE_SIZE:
            self._profiles.clear()
        self._profiles[key_id] = profile
        return profile

    async def confirm(self, identity: Identity, cost: int = 1) -> None:
        """Refuse a revoked token; count `cost` requests against the node's rate."""
        if identity.key_id is None:
            return
        used = await self.scripts.confirm_token(
            keys=[self.keys.token(identity.key_id), self._rate_key(identity.node)],
            args=[identity.node.id, cost, RATE_COUNTER_TTL_S],
        )
        if used < 0:
            self._profiles.pop(identity.key_id, None)
            raise Unauthenticated("unknown or revoked token")
        if used > self.rate_limit_per_minute:
            raise rate_limited()

    async def authenticate(self, authorization: str | None, allow_basic: bool = False) -> Node:
        identity = await self.identify(authorization, allow_basic)
        await self.confirm(identity)
        return identity.node

    def store_guard(self, identity: Identity, counted: bool = False) -> StoreGuard:
        return StoreGuard(
            token_key=self.keys.token(identity.key_id or "-"),
            rate_key=self._rate_key(identity.node),
            rate_limit=0 if counted else self.rate_limit_per_minute,
        )

    def _rate_key(self, node: Node) -> str:
        return self.keys.rate(node.id, int(time.time() // 60))


def rate_limited() -> RateLimited:
    return RateLimited(
        "over the node's rate limit for this minute", retry_after_s=_seconds_to_next_minute()
    )


def require_role(node: Node, role: str) -> None:
    if not node.has_role(role):
        raise Forbidden(f"node {node.id} lacks the {role} role")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("an Authorization: Bearer token is required", token_error=None)
    if authorization.strip().lower() == _BEARER.strip():  # HTTP strips the space after it
        raise Unauthenticated("the bearer token is empty", token_error="invalid_request")
    if not authorization[: len(_BEARER)].lower() == _BEARER:
        raise Unauthenticated(
            "the Authorization header must use the Bearer scheme", token_error=None
        )
    token = authorization[len(_BEARER) :].strip()
    if not token:
        raise Unauthenticated("the bearer token is empty", token_error="invalid_request")
    if not token.isascii():
        raise Unauthenticated("the bearer token is not a valid hub token")
    return token


def _basic(authorization: str) -> tuple[str, str]:
    """(user, password) of HTTP Basic credentials (RFC 7617), UTF-8."""
    encoded = authorization[len(_BASIC) :].strip()
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as e:
        raise Unauthenticated(
            "the Basic credentials are not valid base64 of user:password", token_error=None
        ) from e
    user, colon, password = decoded.partition(":")
    if not colon or not password:
        raise Unauthenticated(
            "the Basic credentials need the node id as user and the token as password",
            token_error=None,
        )
    return user, password


def _seconds_to_next_minute() -> int:
    return max(1, 60 - int(time.time()) % 60)

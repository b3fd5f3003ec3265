"""Who is calling: bearer token to node, in one Redis round trip that also counts its rate."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import orjson
import structlog
from redis.asyncio import Redis

from hub.errors import Forbidden, RateLimited, Unauthenticated
from hub.keys import Keys
from hub.nodes import Node, secret_matches, split_token
from hub.scripts import Scripts

_BEARER = "bearer "


@dataclass(slots=True)
class Authenticator:
    redis: Redis
    keys: Keys
    scripts: Scripts
    rate_limit_per_minute: int
    bootstrap_token: str | None = None
    operator: Node | None = None

    async def authenticate(self, authorization: str | None) -> Node:
        """The node the `Authorization` header speaks for; counts one request against its rate."""
        token = _bearer(authorization)
        if (
            self.bootstrap_token is not None
            and self.operator is not None
            and hmac.compare_digest(token.encode(), self.bootstrap_token.encode())
        ):
            structlog.contextvars.bind_contextvars(node=self.operator.id)
            return self.operator
        parts = split_token(token)
        if parts is None:
            raise Unauthenticated("the bearer token is not a valid hub token")
        key_id, secret = parts
        minute = int(time.time() // 60)
        found = await self.scripts.authenticate(
            keys=[self.keys.token(key_id)], args=[self.keys.nodes_tag, minute, 120]
        )
        if not found:
            raise Unauthenticated("unknown or revoked token")
        secret_hash, node_json, count = found
        if not secret_matches(secret, secret_hash.decode()):
            raise Unauthenticated("unknown or revoked token")
        if count > self.rate_limit_per_minute:
            raise RateLimited(
                f"more than {self.rate_limit_per_minute} requests this minute",
                retry_after_s=_seconds_to_next_minute(),
            )
        node = Node.from_json(orjson.loads(node_json))
        structlog.contextvars.bind_contextvars(node=node.id)
        return node

    async def charge(self, node: Node, extra: int) -> None:
        """Count `extra` more units (a batch counts each alert) and refuse when over the rate."""
        if extra <= 0 or node is self.operator:
            return
        key = self.keys.rate(node.id, int(time.time() // 60))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrby(key, extra)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        if count > self.rate_limit_per_minute:
            raise RateLimited(
                f"more than {self.rate_limit_per_minute} alerts this minute",
                retry_after_s=_seconds_to_next_minute(),
            )


def require_role(node: Node, role: str) -> None:
    if not node.has_role(role):
        raise Forbidden(f"node {node.id} lacks the {role} role")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("an Authorization: Bearer token is required")
    if not authorization[: len(_BEARER)].lower() == _BEARER:
        raise Unauthenticated("the Authorization header must use the Bearer scheme")
    token = authorization[len(_BEARER) :].strip()
    if not token:
        raise Unauthenticated("the bearer token is empty")
    return token


def _seconds_to_next_minute() -> int:
    return max(1, 60 - int(time.time()) % 60)

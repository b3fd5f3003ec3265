"""Nodes and their tokens. A token is `ah_<key id>.<secret>`: the key id finds the record, the
secret is kept only as a SHA-256 digest and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from redis.asyncio import Redis

from hub.ids import now_rfc3339, ulid_floor
from hub.logs import get_logger
from hub.store.keys import Keys
from hub.store.scripts import Scripts

log = get_logger("hub.nodes")

OPERATOR_NODE_ID = "operator"
TOKEN_PREFIX = "ah_"


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    name: str
    country: str | None
    kind: str  # "government" | "civil-society" | "operator"
    roles: frozenset[str]
    withhold_from: frozenset[str] = frozenset()
    created_at: str = ""
    revoked_at: str | None = field(default=None, compare=False)
    # The smallest hub id stored since the node was registered ("" when unknown): the policy
    # compares alerts' hub ids with it (policy.registered_after).
    since_id: str = field(default="", compare=False)
    # Who registered it: the operator node's id, or "cli", "demo", "hub" for the hub's own paths.
    registered_by: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "country": self.country,
            "kind": self.kind,
            "roles": sorted(self.roles),
            "defaults": {"withhold_from": sorted(self.withhold_from)},
            "created_at": self.created_at,
        }
        if self.registered_by is not None:
            out["registered_by"] = self.registered_by
        if self.revoked_at is not None:
            out["revoked_at"] = self.revoked_at
        return out

    def registration_json(self) -> dict[str, object]:
        """The node as a `node.registered` event shows it to the nodes of its country: who it
        is and what it may do, not its standing defaults."""
        return {
            "id": self.id,
            "name": self.name,
            "country": self.country,
            "kind": self.kind,
            "roles": sorted(self.roles),
            "created_at": self.created_at,
            "registered_by": self.registered_by,
        }

    @classmethod
    def from_json(cls, data: dict, revoked_at: str | None = None) -> Node:
        return cls(
            id=data["id"],
            name=data["name"],
            country=data.get("country"),
            kind=data["kind"],
            roles=frozenset(data["roles"]),
            withhold_from=frozenset((data.get("defaults") or {}).get("withhold_from", ())),
            created_at=data.get("created_at", ""),
            revoked_at=revoked_at,
            since_id=_since_id(data.get("created_at", "")),
            registered_by=data.get("registered_by"),
        )


def _since_id(created_at: str) -> str:
    try:
        moment = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return ulid_floor(moment) if moment.tzinfo is not None else ""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    key_id: str
    secret_hash: str


def issue_token() -> IssuedToken:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return IssuedToken(f"{TOKEN_PREFIX}{key_id}.{secret}", key_id, hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed hub token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, dot, secret = token[len(TOKEN_PREFIX) :].partition(".")
    if not dot or len(key_id) != 16 or not secret or len(secret) > 128:
        return None
    if not all(c in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


class NodeRegistry:
    """Nodes in Redis. Revoked nodes keep their record (so their id is never reused by a newcomer
    who would then own the old node's alerts) but lose their token at once."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts

    async def create(
        self, profile: dict, with_token: bool = True, registered_by: str = "hub"
    ) -> tuple[Node, str | None]:
        """Store a new node; returns it and its token, or raises KeyError when the id exists.
        A node with a country is announced to that country's nodes in the same step: the
        event log gets a `node_registered` entry, which fan-out turns into a node.registered
        event in their subscriptions' feeds (fanout.py). Every registration is logged."""
        data = {**profile, "created_at": now_rfc3339(), "registered_by": registered_by}
        node = Node.from_json(data)
        issued = issue_token() if with_token else None
        announced = orjson.dumps(node.registration_json()) if node.country else b""
        created = await self._scripts.create_node(
            keys=[
                self._keys.node(node.id),
                self._keys.node_ids,
                self._keys.token(issued.key_id if issued else "-"),
                self._keys.events,
            ],
            args=[
                node.id,
                orjson.dumps(node.as_json()),
                issued.key_id if issued else "",
                issued.secret_hash if issued else "",
                announced,
                node.created_at,
            ],
        )
        if not created:
            raise KeyError(node.id)
        log.info(
            "node_registered",
            registered_by=registered_by,
            node_id=node.id,
            country=node.country,
            kind=node.kind,
            roles=sorted(node.roles),
        )
        return node, issued.token if issued else None

    async def ensure(self, profile: dict, registered_by: str = "hub") -> Node:
        """The node with this id, created without a token when it does not exist yet."""
        try:
            node, _ = await self.create(profile, with_token=False, registered_by=registered_by)
        except KeyError:
            found = await self.get(profile["id"])
            assert found is not None
            return found
        return node

    async def replace_token(self, node_id: str) -> str | None:
        """A fresh token for a live node, the old one revoked in the same step; None if no node."""
        issued = issue_token()
        ok = await self._scripts.replace_token(
            keys=[self._keys.node(node_id), self._keys.token(issued.key_id)],
            args=[self._keys.core, node_id, issued.key_id, issued.secret_hash],
        )
        return issued.token if ok else None

    async def get(self, node_id: str) -> Node | None:
        raw, revoked_at = await self._redis.hmget(self._keys.node(node_id), ["json", "revoked_at"])
        if raw is None:
            return None
        return Node.from_json(orjson.loads(raw), revoked_at.decode() if revoked_at else None)

    async def list(self) -> list[Node]:
        ids = sorted(m.decode() for m in await self._redis.smembers(self._keys.node_ids))
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hmget(self._keys.node(node_id), ["json", "revoked_at"])
            rows = await pipe.execute()
        return [
            Node.from_json(orjson.loads(raw), revoked.decode() if revoked else None)
            for raw, revoked in rows
            if raw is not None
        ]

    async def revoke(self, node_id: str) -> str:
        """'revoked', 'already' or 'missing'."""
        result = await self._scripts.revoke_node(
            keys=[self._keys.node(node_id), self._keys.subscriptions_version],
            args=[self._keys.core, now_rfc3339(), self._keys.node_revoked, node_id],
        )
        return result.decode() if isinstance(result, bytes) else str(result)

    async def all_live(self, node_ids: Iterable[str]) -> bool:
        """Whether every one of these nodes exists and is not revoked (one round trip)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in node_ids:
                pipe.hmget(self._keys.node(node_id), ["json", "revoked_at"])
            rows = await pipe.execute()
        return all(raw is not None and revoked is None for raw, revoked in rows)

"""Fact-checks: a fact-checker's verdict (the fields of schema.org ClaimReview) posted on an alert
it may see. It attaches to the alert's cluster, so that everyone who received a report of the
claim learns of it, and it is never shown wider than the alert it was posted on: a node sees a
fact-check only when it may see that alert (policy.may_see).

Revisions work as for alerts: the checker's own `id` and `revision` make a resend idempotent, a
higher revision an update, a lower one a conflict; the checker may retract its fact-check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from hub.errors import Conflict, Forbidden, NotFound
from hub.ids import is_ulid, new_ulid, now_rfc3339
from hub.nodes import Node
from hub.policy import Sharing, may_see
from hub.store.keys import Keys
from hub.store.scripts import Scripts

MAX_REVISION = 2**31 - 1
# Shown per alert or cluster at most; the bound counts only fact-checks the caller may see.
MAX_SHOWN = 100
BEST, WORST = 5, 1

FACT_CHECK_FIELDS = (
    "doc",
    "checker",
    "hub_id",
    "cluster_id",
    "revision",
    "status",
    "received_at",
    "updated_at",
    "retracted_at",
    "retraction_reason",
)


@dataclass(frozen=True, slots=True)
class StoredFactCheck:
    id: str  # the hub's id of the fact-check (a ULID)
    doc: dict[str, Any]  # the body as stored: revision and the rating scale filled in
    checker: str
    hub_id: str  # the alert it was posted on: who may see that alert may see this
    cluster_id: str  # the alert's cluster when it was posted
    revision: int
    status: str  # active | retracted
    received_at: str
    updated_at: str | None
    retracted_at: str | None
    retraction_reason: str | None

    @classmethod
    def from_row(cls, fact_check_id: str, row: list[bytes | None]) -> StoredFactCheck | None:
        fields = dict(zip(FACT_CHECK_FIELDS, row, strict=True))
        if fields["doc"] is None or fields["hub_id"] is None:
            return None
        text = {k: v.decode() if v is not None else None for k, v in fields.items() if k != "doc"}
        return cls(
            id=fact_check_id,
            doc=orjson.loads(fields["doc"]),
            checker=text["checker"] or "",
            hub_id=text["hub_id"] or "",
            cluster_id=text["cluster_id"] or "",
            revision=int(text["revision"] or 1),
            status=text["status"] or "active",
            received_at=text["received_at"] or "",
            updated_at=text["updated_at"],
            retracted_at=text["retracted_at"],
            retraction_reason=text["retraction_reason"],
        )

    @property
    def active(self) -> bool:
        return self.status == "active"

    def public_json(self) -> dict[str, Any]:
        """The fact-check as every read path and event shows it."""
        out: dict[str, Any] = {
            **self.doc,
            "fact_check_id": self.id,
            "hub_id": self.hub_id,
            "cluster_id": self.cluster_id,
            "status": self.status,
            "received_at": self.received_at,
        }
        if self.updated_at:
            out["updated_at"] = self.updated_at
        if self.retracted_at:
            out["retracted_at"] = self.retracted_at
            out["retraction_reason"] = self.retraction_reason or ""
        return out


@dataclass(frozen=True, slots=True)
class FactCheckOutcome:
    status: str  # created | updated | unchanged
    fact_check_id: str
    hub_id: str
    cluster_id: str
    revision: int

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fact_check_id": self.fact_check_id, "status": self.status}
        if self.status in ("created", "updated"):
            out["revision"] = self.revision
        if self.status == "created":
            out.update(hub_id=self.hub_id, cluster_id=self.cluster_id)
        return out


def prepare(body: dict[str, Any], checker: Node) -> tuple[bytes, str, int]:
    """The stored document of a schema-valid body (the checker's name and country from its
    node, never the body; the rating scale filled in), its content hash and its revision."""
    revision = int(body.get("revision", 1))
    if revision > MAX_REVISION:
        raise Conflict(f"revision may be at most {MAX_REVISION}")
    rating = {"best": BEST, "worst": WORST, **body["rating"]}
    doc = {
        **body,
        "revision": revision,
        "rating": rating,
        "checker": checker.id,
        "checker_name": checker.name,
        "checker_country": checker.country,
    }
    raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return raw, hashlib.sha256(raw).hexdigest(), revision


async def load_fact_checks(
    redis: Redis, keys: Keys, ids: list[str]
) -> list[StoredFactCheck | None]:
    async with redis.pipeline(transaction=False) as pipe:
        for fact_check_id in ids:
            pipe.hmget(keys.fact_check(fact_check_id), list(FACT_CHECK_FIELDS))
        rows = await pipe.execute()
    return [StoredFactCheck.from_row(i, r) for i, r in zip(ids, rows, strict=True)]


async def sharing_of(redis: Redis, keys: Keys, hub_ids: list[str]) -> dict[str, Sharing]:
    """The sharing of each stored alert among `hub_ids`."""
    unique = sorted(set(hub_ids))
    async with redis.pipeline(transaction=False) as pipe:
        for hub_id in unique:
            pipe.hget(keys.alert(hub_id), "meta")
        rows = await pipe.execute()
    return {
        h: Sharing.from_json(orjson.loads(meta), h)
        for h, meta in zip(unique, rows, strict=True)
        if meta is not None
    }


class FactCheckStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts

    async def submit(self, body: dict[str, Any], checker: Node, hub_id: str) -> FactCheckOutcome:
        """Store a schema-valid fact-check on the alert `hub_id`, which the caller has checked
        that `checker` may see. Conflict for a stale revision, other content under the same
        revision, an update of a retracted fact-check, an id already used on another alert,
        and a new fact-check on a retracted alert."""
        doc, content_hash, revision = prepare(body, checker)
        reply = await self._scripts.store_fact_check(
            keys=[self._keys.checker_ids, self._keys.events],
            args=[
                self._keys.core,
                checker.id,
                body["id"],
                revision,
                new_ulid(),
                hub_id,
                now_rfc3339(),
                doc,
                content_hash,
            ],
        )
        status = reply[0].decode()
        if status == "missing":
            raise NotFound(f"no alert {hub_id}")
        fact_check_id, cluster_id, stored = reply[1].decode(), reply[2].decode(), int(reply[3])
        own = body["id"]
        if status == "alert_retracted":
            raise Conflict(f"alert {hub_id} was retracted; post the fact-check on a live report")
        if status == "elsewhere":
            raise Conflict(f"fact-check {own} was posted on another alert; give this one a new id")
        if status == "stale":
            raise Conflict(f"revision {revision} is older than the stored revision {stored}")
        if status == "conflict":
            raise Conflict(
                f"revision {stored} of {own} is stored with other content; "
                "send a higher revision to update it"
            )
        if status == "retracted":
            raise Conflict(f"fact-check {own} was retracted and cannot be updated")
        return FactCheckOutcome(status, fact_check_id, hub_id, cluster_id, stored)

    async def retract(self, fact_check_id: str, hub_id: str, checker: Node, reason: str) -> bool:
        """Retract the checker's own fact-check posted on `hub_id` (an alert the caller has
        checked it may see); False when it was retracted already. NotFound for a fact-check
        that is not on that alert, Forbidden for another node's."""
        (found,) = await self.load([fact_check_id])
        if found is None or found.hub_id != hub_id:
            raise NotFound(f"no fact-check {fact_check_id} on alert {hub_id}")
        reply = await self._scripts.retract_fact_check(
            keys=[self._keys.fact_check(fact_check_id), self._keys.events],
            args=[fact_check_id, checker.id, now_rfc3339(), reason],
        )
        status = reply[0].decode()
        if status == "missing":
            raise NotFound(f"no fact-check {fact_check_id} on alert {hub_id}")
        if status == "not_checker":
            raise Forbidden("only the fact-checker who posted it may retract a fact-check")
        return status == "retracted"

    async def load(self, ids: list[str]) -> list[StoredFactCheck | None]:
        return await load_fact_checks(
            self._redis, self._keys, [i if is_ulid(i) else "-" for i in ids]
        )

    async def of_clusters(
        self, cluster_ids: list[str], caller: Node
    ) -> dict[str, list[StoredFactCheck]]:
        """Per cluster, its fact-checks the caller may see (posted on an alert it may see),
        oldest first, at most MAX_SHOWN each: the bound counts only those."""
        unique = sorted(set(cluster_ids))
        rows: list[list[bytes]] = []
        for start in range(0, len(unique), 1000):  # Keys.cluster_fact_checks, read in one call
            rows += await self._scripts.read_members(
                keys=[self._keys.core],
                args=[self._keys.core, "cfc:", "zset", *unique[start : start + 1000]],
            )
        ids = {c: [m.decode() for m in members] for c, members in zip(unique, rows, strict=True)}
        every = [i for members in ids.values() for i in members]
        if not every:
            return {c: [] for c in unique}
        loaded = {f.id: f for f in await load_fact_checks(self._redis, self._keys, every) if f}
        sharing = await sharing_of(self._redis, self._keys, [f.hub_id for f in loaded.values()])
        out: dict[str, list[StoredFactCheck]] = {}
        for cluster_id, members in ids.items():
            shown = [
                loaded[i]
                for i in members
                if i in loaded
                and loaded[i].hub_id in sharing
                and may_see(sharing[loaded[i].hub_id], caller)
            ]
            out[cluster_id] = shown[:MAX_SHOWN]
        return out

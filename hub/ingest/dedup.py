"""Decide whether a report is new, a resend, an update or a corroboration, and store it, in one
atomic Redis step (store_alert_lua). The pure preparation comes first, the Redis call last.

A cluster is named by its content: its id is a keyed hash of the content fingerprint, so every
report of one content is in one cluster whoever may see whom, and the id a sender is told never
depends on reports it may not see. Whether a report is `corroborated` is answered from the
earliest live report carrying the same content within the dedup window *that the sender may
see*; reports it may not see change nothing in its answer (DESIGN.md, non-interference).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from hub.auth import StoreGuard, rate_limited
from hub.errors import Conflict, Forbidden, NotFound, Unauthenticated
from hub.ids import new_ulid, now_rfc3339
from hub.ingest import canon
from hub.ingest.similarity.signature import alert_claims, claims_json, index_scores
from hub.nodes import Node
from hub.policy import Sharing, may_see
from hub.store.batching import ScriptBatcher
from hub.store.keys import Keys, links_bucket_now
from hub.store.scripts import Scripts
from hub.store.stats import HOUR_KEY_TTL_S, MINUTE_KEY_TTL_S, NO_COUNTRY, count_corroboration

MAX_REVISION = 2**31 - 1


@dataclass(frozen=True, slots=True)
class PreparedAlert:
    alert_id: str
    revision: int
    doc: bytes
    sharing: Sharing
    content_hash: str
    fingerprint: str
    link_scores: list[str]  # canon.link_score of each link key, sorted, distinct
    kind: str
    target_countries: tuple[str, ...]
    audiences: list[str]  # the listing indexes it is filed under (policy.Sharing.audiences)
    # Its claims as the similarity index keeps them (similarity.signature), as JSON ("[]" for
    # none), and their index scores.
    similarity: bytes = b"[]"
    similarity_scores: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one report: created, corroborated, unchanged or updated (API.md)."""

    status: str
    hub_id: str
    cluster_id: str
    revision: int
    duplicate_of: str | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"hub_id": self.hub_id, "status": self.status}
        if self.status in ("created", "corroborated", "updated"):
            out["revision"] = self.revision
        if self.status in ("created", "corroborated"):
            out["cluster_id"] = self.cluster_id
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of
        return out


def check_claimed_sender(body: dict, node: Node) -> None:
    """Refuse a body that names another sender or source country: checked before the schema, so
    an impersonation attempt is always answered 403."""
    sender = body.get("sender")
    if isinstance(sender, str) and sender != node.id:
        raise Forbidden(f"node {node.id} cannot post as {sender}")
    country = body.get("source_country")
    if isinstance(country, str) and country != node.country:
        raise Forbidden(f"node {node.id} posts from {node.country}, not {country}")


def prepare(body: dict, sender: Node, similarity: bool = True) -> PreparedAlert:
    """The stored form of a schema-valid alert body (checked by check_claimed_sender): the sender
    and its country come from the node, never from the body; the node's standing withholds join
    the alert's own. With `similarity`, its claims' signatures for the similarity index."""
    revision = int(body.get("revision", 1))  # 2.0 is the integer 2 to JSON Schema, and here
    if revision > MAX_REVISION:
        raise Conflict(f"revision may be at most {MAX_REVISION}")
    doc = {**body, "revision": revision, "sender": sender.id, "source_country": sender.country}
    share = body.get("share") or {}
    sharing = Sharing(
        sender=sender.id,
        sender_country=sender.country,
        tlp=body["tlp"],
        recipients=frozenset(share.get("recipients", ())),
        withhold_from=frozenset(share.get("withhold_from", ())) | sender.withhold_from,
    )
    doc_bytes = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    fingerprint, links = canon.content_keys(body)
    claims = alert_claims(body) if similarity else []
    return PreparedAlert(
        alert_id=body["id"],
        revision=revision,
        doc=doc_bytes,
        sharing=sharing,
        content_hash=hashlib.sha256(doc_bytes).hexdigest(),
        fingerprint=fingerprint,
        link_scores=sorted({canon.link_score(link) for link in links}),
        kind=body["kind"],
        target_countries=tuple(sorted(set(body.get("target_countries", ())))),
        audiences=sharing.audiences(),
        similarity=orjson.dumps(claims_json(claims)),
        similarity_scores=tuple(index_scores(claims)),
    )


def cluster_name(key: bytes, fingerprint: str) -> str:
    """The id of the cluster of every report with this content fingerprint: keyed, so that the
    id of a cluster does not let anyone test guesses of its content (a single IP address)."""
    digest = hmac.new(key, b"cluster:" + fingerprint.encode(), hashlib.sha256).digest()
    return "cl_" + digest[:12].hex()


class AlertStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        dedup_window_s: int,
        batcher: ScriptBatcher,
        cluster_key: bytes,
    ) -> None:
        self._redis = redis
        self._cluster_key = cluster_key
        self._batcher = batcher
        self._keys = keys
        self._scripts = scripts
        self._window = dedup_window_s
        # The keys every store names, built once (each Keys property formats a string).
        self._core = keys.core
        self._fixed_keys = (keys.sender_ids, keys.events, keys.recent, keys.ingest_counts)

    async def submit(self, alert: PreparedAlert, sender: Node, guard: StoreGuard) -> Outcome:
        """Store one prepared report. Raises Unauthenticated for a token revoked since it was
        identified, RateLimited over the node's rate, and Conflict for a stale revision, a changed
        body under the same revision, or an update to a retracted alert."""
        meta = {**alert.sharing.as_json(), "kind": alert.kind, "targets": alert.target_countries}
        now = time.time()
        links_bucket = links_bucket_now(self._window)
        reply = await self._batcher.call(
            self._scripts.store_alert,
            keys=[
                *self._fixed_keys,
                self._keys.fingerprint_reports(alert.fingerprint),
                guard.token_key,
                guard.rate_key,
                self._keys.links(links_bucket),
                self._keys.similar(links_bucket),
            ],
            args=[
                self._core,
                sender.id,
                alert.alert_id,
                alert.revision,
                new_ulid(),
                cluster_name(self._cluster_key, alert.fingerprint),
                now_rfc3339(),
                alert.doc,
                orjson.dumps(meta),
                alert.content_hash,
                alert.fingerprint,
                self._window,
                orjson.dumps(alert.link_scores),
                orjson.dumps(alert.audiences),
                guard.rate_limit,
                guard.rate_ttl_s,
                links_bucket,
                int(now // 60),
                int(now // 3600),
                sender.country or NO_COUNTRY,
                MINUTE_KEY_TTL_S,
                HOUR_KEY_TTL_S,
                int(now * 1000),
                alert.similarity,
                orjson.dumps(alert.similarity_scores),
            ],
        )
        if reply[0] == b"unauthenticated":
            raise Unauthenticated("unknown or revoked token")
        if reply[0] == b"rate_limited":
            raise rate_limited()
        status, hub_id, cluster_id, revision = (
            reply[0].decode(),
            reply[1].decode(),
            reply[2].decode(),
            int(reply[3]),
        )
        if status == "stale":
            raise Conflict(
                f"revision {alert.revision} is older than the stored revision {revision}"
            )
        if status == "conflict":
            raise Conflict(
                f"revision {revision} of {alert.alert_id} is stored with other content; "
                "send a higher revision to update it"
            )
        if status == "retracted":
            raise Conflict(f"{alert.alert_id} was retracted and cannot be updated")
        if status == "corroborated":
            earlier = [h.decode() for h in reply[5]]
            seen = await self._first_visible(earlier, sender)
            # Counted as the sender is answered: the counts must not reveal what it may not see.
            await count_corroboration(self._redis, self._keys, visible=seen is not None)
            if seen is None:
                # The sender may not see what it duplicates: answer exactly as for new content.
                return Outcome("created", hub_id, cluster_id, revision)
            return Outcome("corroborated", hub_id, cluster_id, revision, duplicate_of=seen)
        return Outcome(status, hub_id, cluster_id, revision)

    async def _first_visible(self, hub_ids: list[str], node: Node) -> str | None:
        """The earliest of the reports that carry the content now (the store script lists them
        earliest first; a retracted report carries nothing) that `node` may see: what its report
        corroborates. A node's own earlier report counts (it tells the node it reported this
        content already, so one content is still one `created`). Every one is looked at, however
        many come before it that the node may not see: a bound here would be one they move."""
        if not hub_ids:
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            for hub_id in hub_ids:
                pipe.hmget(self._keys.alert(hub_id), ["meta", "status"])
            rows = await pipe.execute()
        for hub_id, (meta, status) in zip(hub_ids, rows, strict=True):
            if meta is None or status == b"retracted":
                continue
            if may_see(Sharing.from_json(orjson.loads(meta), hub_id), node):
                return hub_id
        return None

    async def retract(self, hub_id: str, sender: Node, reason: str) -> bool:
        """Retract the sender's own alert; False when it was retracted already. The caller has
        already checked that the alert exists, is visible and belongs to `sender`."""
        # Through the ingest batcher, as a post is: with ALERTHUB_MIN_REPLICAS_ACK the answer
        # waits for the replicas in the same way.
        reply = await self._batcher.call(
            self._scripts.retract_alert,
            keys=[self._keys.alert(hub_id), self._keys.events, self._keys.ingest_counts],
            args=[hub_id, sender.id, now_rfc3339(), reason, self._keys.core],
        )
        status = reply[0].decode()
        if status == "missing":
            raise NotFound(f"no alert {hub_id}")
        if status == "not_sender":
            raise Forbidden("only the sender may retract an alert")
        return status == "retracted"


async def file_older_alerts(redis: Redis, keys: Keys, chunk: int = 1000) -> int:
    """File every alert stored before the listing indexes existed (keys.py, Keys.audience)
    under its indexes, once per keyspace; returns how many were filed. Safe to run from several
    processes at once: filing is idempotent, and an alert stored meanwhile is filed by the
    store script itself."""
    if await redis.exists(keys.audiences_built):
        return 0
    filed = 0
    lower = "-"
    while True:
        ids = [m.decode() for m in await redis.zrangebylex(keys.recent, lower, "+", 0, chunk)]
        async with redis.pipeline(transaction=False) as pipe:
            for hub_id in ids:
                pipe.hmget(keys.alert(hub_id), ["meta", "audiences"])
            rows = await pipe.execute()
        async with redis.pipeline(transaction=False) as pipe:
            for hub_id, (meta, audiences) in zip(ids, rows, strict=True):
                if meta is None or audiences is not None:
                    continue
                names = Sharing.from_json(orjson.loads(meta), hub_id).audiences()
                for name in names:
                    pipe.zadd(keys.audience(name), {hub_id: 0})
                pipe.hset(keys.alert(hub_id), "audiences", orjson.dumps(names))
                filed += 1
            await pipe.execute()
        if len(ids) < chunk:
            break
        lower = f"({ids[-1]}"
    await redis.set(keys.audiences_built, "1")
    return filed

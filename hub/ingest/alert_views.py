"""Stored alerts as one caller may see them: the sharing policy filters the alert itself, its
co-reporters and its related alerts, so no read path shows what the caller may not see."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

import orjson
from redis.asyncio import Redis

from hub.errors import NotFound
from hub.ids import is_ulid, ulid_floor, utc_now
from hub.ingest.similar_views import SimilarViews
from hub.nodes import Node
from hub.policy import Sharing, may_see, reader_audiences
from hub.store.keys import Keys, links_bucket_now

ALERT_FIELDS = (
    "doc",
    "meta",
    "cluster_id",
    "received_at",
    "updated_at",
    "status",
    "retracted_at",
    "retraction_reason",
    "links",
    "links_bucket",
)
MAX_REPORTERS = 200
MAX_RELATED = 50
READ_CHUNK = 500


@dataclass(frozen=True, slots=True)
class StoredAlert:
    hub_id: str
    doc: dict
    sharing: Sharing
    cluster_id: str
    received_at: str
    updated_at: str | None
    status: str
    retracted_at: str | None
    retraction_reason: str | None
    link_scores: list[str]  # canon.link_score of each link key (the record's "links" field)
    links_bucket: int | None

    @classmethod
    def from_row(cls, hub_id: str, row: list[bytes | None]) -> StoredAlert | None:
        fields = dict(zip(ALERT_FIELDS, row, strict=True))
        if fields["doc"] is None or fields["meta"] is None:
            return None
        text = {
            k: (v.decode() if v is not None else None)
            for k, v in fields.items()
            if k not in ("doc", "meta", "links", "links_bucket")
        }
        return cls(
            hub_id=hub_id,
            doc=orjson.loads(fields["doc"]),
            sharing=Sharing.from_json(orjson.loads(fields["meta"]), hub_id),
            cluster_id=text["cluster_id"] or "",
            received_at=text["received_at"] or "",
            updated_at=text["updated_at"],
            status=text["status"] or "active",
            retracted_at=text["retracted_at"],
            retraction_reason=text["retraction_reason"],
            link_scores=orjson.loads(fields["links"]) if fields["links"] else [],
            links_bucket=int(fields["links_bucket"]) if fields["links_bucket"] else None,
        )

    def current_status(self, now: datetime) -> str:
        if self.status != "active":
            return self.status
        valid_until = self.doc.get("valid_until")
        if valid_until and _parse_time(valid_until) is not None and _parse_time(valid_until) < now:
            return "expired"
        return "active"

    def summary_json(self, now: datetime) -> dict[str, object]:
        """The alert with the hub fields that need no further reads (used by listings)."""
        out = dict(self.doc)
        out.update(
            hub_id=self.hub_id,
            received_at=self.received_at,
            cluster_id=self.cluster_id,
            status=self.current_status(now),
        )
        if self.updated_at:
            out["updated_at"] = self.updated_at
        if self.retracted_at:
            out["retracted_at"] = self.retracted_at
            out["retraction_reason"] = self.retraction_reason or ""
        return out


@dataclass(frozen=True, slots=True)
class AlertHeader:
    """What deciding about an alert takes, without its body: who may see it, its kind and
    targets, its cluster. Listings, reporters and related alerts filter on headers and load
    bodies only for what the caller will get."""

    hub_id: str
    sharing: Sharing
    kind: str
    targets: frozenset[str]
    cluster_id: str
    received_at: str

    def matches(self, caller: Node, kind: str | None, target: str | None) -> bool:
        if kind is not None and self.kind != kind:
            return False
        if target is not None and target not in self.targets:
            return False
        return may_see(self.sharing, caller)


_HEADER_FIELDS = ["meta", "cluster_id", "received_at"]


def _header(hub_id: str, row: list[bytes | None]) -> AlertHeader | None:
    meta, cluster_id, received_at = row
    if meta is None:
        return None
    data = orjson.loads(meta)
    return AlertHeader(
        hub_id=hub_id,
        sharing=Sharing.from_json(data, hub_id),
        kind=data["kind"],
        targets=frozenset(data.get("targets", ())),
        cluster_id=cluster_id.decode() if cluster_id else "",
        received_at=received_at.decode() if received_at else "",
    )


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


async def load_alerts(redis: Redis, keys: Keys, hub_ids: list[str]) -> list[StoredAlert | None]:
    """The stored alerts in one pipelined round trip; None for any that does not exist."""
    async with redis.pipeline(transaction=False) as pipe:
        for hub_id in hub_ids:
            pipe.hmget(keys.alert(hub_id), list(ALERT_FIELDS))
        rows = await pipe.execute()
    return [StoredAlert.from_row(h, r) for h, r in zip(hub_ids, rows, strict=True)]


class AlertViews:
    def __init__(
        self, redis: Redis, keys: Keys, window_s: int, similar: SimilarViews | None = None
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._window_s = window_s
        self._similar = similar

    async def _load_many(self, hub_ids: list[str]) -> list[StoredAlert | None]:
        return await load_alerts(self._redis, self._keys, hub_ids)

    async def _headers(self, hub_ids: list[str]) -> list[AlertHeader | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for hub_id in hub_ids:
                pipe.hmget(self._keys.alert(hub_id), _HEADER_FIELDS)
            rows = await pipe.execute()
        return [_header(h, r) for h, r in zip(hub_ids, rows, strict=True)]

    async def visible(self, hub_id: str, caller: Node) -> StoredAlert:
        """The stored alert, or NotFound when it does not exist or the caller may not see it."""
        if not is_ulid(hub_id):
            raise NotFound(f"no alert {hub_id}")
        (alert,) = await self._load_many([hub_id])
        if alert is None or not may_see(alert.sharing, caller):
            raise NotFound(f"no alert {hub_id}")
        return alert

    async def full_json(self, alert: StoredAlert, caller: Node) -> dict[str, object]:
        """The alert with reporters and related alerts, each filtered for the caller."""
        now = utc_now()
        out = alert.summary_json(now)
        out["reporters"] = await self._reporters(alert, caller)
        out["related"] = await self._related(alert, caller)
        if self._similar is not None:
            out.update(await self._similar.annotate(alert.hub_id, (caller,)))
        return out

    async def _reporters(self, alert: StoredAlert, caller: Node) -> list[dict[str, str | None]]:
        """The cluster's first MAX_REPORTERS reports that the caller may see. The bound counts
        only those: reports it may not see, however many, never push one off the list."""
        key = self._keys.cluster(alert.cluster_id)
        reporters: list[dict[str, str | None]] = []
        start = 0
        while len(reporters) < MAX_REPORTERS:
            members = [
                m.decode() for m in await self._redis.lrange(key, start, start + READ_CHUNK - 1)
            ]
            for member in await self._headers(members):
                if member is not None and may_see(member.sharing, caller):
                    reporters.append(
                        {
                            "node": member.sharing.sender,
                            "country": member.sharing.sender_country,
                            "hub_id": member.hub_id,
                            "reported_at": member.received_at,
                        }
                    )
            if len(members) < READ_CHUNK:
                break
            start += READ_CHUNK
        return reporters[:MAX_REPORTERS]

    async def _related(self, alert: StoredAlert, caller: Node) -> list[str]:
        """The oldest MAX_RELATED alerts of other clusters sharing a link key with this one that
        the caller may see; as with reporters, the bound counts only what the caller may see."""
        if not alert.link_scores:
            return []
        current = links_bucket_now(self._window_s)
        buckets = {current, current - 1}
        if alert.links_bucket is not None:
            buckets.add(alert.links_bucket)
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in sorted(buckets):
                for score in alert.link_scores:  # at most ~1,500 (the schema's list limits)
                    pipe.zrangebyscore(self._keys.links(bucket), score, score)
            found = await pipe.execute()
        # Entries are "<hub_id>:<n>" (scripts.py, add_links).
        ids = {member.rpartition(b":")[0].decode() for members in found for member in members}
        others = sorted(ids - {alert.hub_id})
        related: list[str] = []
        for start in range(0, len(others), READ_CHUNK):
            for other in await self._headers(others[start : start + READ_CHUNK]):
                if (
                    other is not None
                    and other.cluster_id != alert.cluster_id
                    and may_see(other.sharing, caller)
                ):
                    related.append(other.hub_id)
            if len(related) >= MAX_RELATED:
                break
        return related[:MAX_RELATED]

    async def listing(
        self,
        caller: Node,
        *,
        limit: int,
        after: str | None,
        since: datetime | None,
        kind: str | None,
        target_country: str | None,
    ) -> tuple[list[dict[str, object]], str | None]:
        """Newest first, only what the caller may see, and the position to go on from: the last
        alert returned when the page is full (the next page may then be empty), None when it is
        not. Paging depends only on what the caller may see. The alerts are read from the listing
        indexes the caller reads (policy.reader_audiences), merged, each checked against the
        policy: what the caller may not see costs time only where it was filed for the caller
        and then withheld from it."""
        lowest = ulid_floor(since) if since else ""
        whole, since_registered = reader_audiences(caller)
        streams = [IndexStream(self._keys.audience(n), after, lowest) for n in whole] + [
            IndexStream(self._keys.audience(n), after, max(lowest, caller.since_id))
            for n in since_registered
        ]
        chosen: list[str] = []
        while len(chosen) < limit:
            await self._refill([s for s in streams if s.wants_more])
            candidates = merge_newest(streams, READ_CHUNK)
            if not candidates:
                break
            for header in await self._headers(candidates):
                if header is not None and header.matches(caller, kind, target_country):
                    chosen.append(header.hub_id)
                    if len(chosen) == limit:
                        break
        now = utc_now()
        found = [a.summary_json(now) for a in await self._load_many(chosen) if a is not None]
        return found, chosen[-1] if len(chosen) == limit else None

    async def _refill(self, streams: list[IndexStream]) -> None:
        if not streams:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.zrevrangebylex(stream.key, stream.upper, stream.lower, start=0, num=READ_CHUNK)
            pages = await pipe.execute()
        for stream, page in zip(streams, pages, strict=True):
            stream.take([m.decode() for m in page], READ_CHUNK)


class IndexStream:
    """One listing index read newest first, a chunk at a time, below `after` and at or above
    `lowest` (a hub id, or "" for no bound)."""

    def __init__(self, key: str, after: str | None, lowest: str) -> None:
        self.key = key
        self.upper = f"({after}" if after else "+"
        self.lower = f"[{lowest}" if lowest else "-"
        self.buffer: deque[str] = deque()  # newest first
        self.done = False

    @property
    def wants_more(self) -> bool:
        return not self.done and not self.buffer

    def take(self, page: list[str], asked: int) -> None:
        self.buffer.extend(page)
        if page:
            self.upper = f"({page[-1]}"
        if len(page) < asked:
            self.done = True


def merge_newest(streams: list[IndexStream], count: int) -> list[str]:
    """Up to `count` distinct ids, newest first, taken from the streams' buffers for as long as
    every stream that may still hold more has some buffered (so the merged order is exact). An
    alert filed under several indexes is at the head of each at once, and taken once."""
    out: list[str] = []
    while len(out) < count:
        live = [s for s in streams if s.buffer]
        if not live or any(s.wants_more for s in streams):
            break
        newest = max(s.buffer[0] for s in live)
        for s in live:
            if s.buffer[0] == newest:
                s.buffer.popleft()
        out.append(newest)
    return out

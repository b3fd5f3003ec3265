"""The objects of a TAXII collection, read with one node's eyes.

A collection is a stream of alert events: the event log for `visible` (every alert the node may
see), a pull subscription's own feed for that subscription (its filter and sharing were applied
when fan-out wrote it). Each event that logged the alert's current version (its latest revision,
or its retraction) stands for that version: its objects were added at that entry (taxii.py,
date_added). Events of older versions are passed over, so every object version is listed once,
where it was last logged. A fact-check's events stand for its versions in the same way: a note
on the report of the alert it was posted on, for whoever may see that alert.

The sharing policy is checked again on every read, with the alert's current sharing: an alert
whose sender has since withheld it is not there, in no count, page, header or `next` token.
Alerts, fact-checks and registrations the node may not see are read past, never stood on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from hub.ingest.fact_checks import StoredFactCheck, load_fact_checks
from hub.interop.stix import AlertVersion, Sender, alert_objects
from hub.interop.stix_fact_checks import FactCheckVersion, fact_check_objects
from hub.interop.taxii import Match, date_added
from hub.nodes import Node, NodeRegistry
from hub.policy import Sharing, may_see
from hub.store.keys import Keys

ALERT_EVENTS = frozenset({"created", "corroborated", "updated", "retracted"})
FACT_CHECK_RETRACTED = "fact_check_retracted"
FACT_CHECK_EVENTS = frozenset({"fact_checked", FACT_CHECK_RETRACTED})
READ_CHUNK = 256  # stream entries per XRANGE
LOAD_CHUNK = 64  # alerts per pipelined load: a page stops part-way through a chunk
# What a collection needs of a stored alert (keys.py, Keys.alert): not its links or similarity.
FIELDS = ("doc", "meta", "received_at", "updated_at", "status", "retracted_at")


@dataclass(frozen=True, slots=True)
class Stored:
    hub_id: str
    doc: dict[str, Any]
    sharing: Sharing
    received_at: str
    updated_at: str | None
    status: str
    retracted_at: str | None

    @classmethod
    def from_row(cls, hub_id: str, row: list[bytes | None]) -> Stored | None:
        doc, meta, received_at, updated_at, status, retracted_at = row
        if doc is None or meta is None:
            return None
        return cls(
            hub_id=hub_id,
            doc=orjson.loads(doc),
            sharing=Sharing.from_json(orjson.loads(meta), hub_id),
            received_at=received_at.decode() if received_at else "",
            updated_at=updated_at.decode() if updated_at else None,
            status=status.decode() if status else "active",
            retracted_at=retracted_at.decode() if retracted_at else None,
        )


@dataclass(frozen=True, slots=True)
class Source:
    """Where a collection's objects come from and whose eyes read them."""

    collection_id: str
    stream_key: str
    reader: Node


@dataclass(frozen=True, slots=True)
class Item:
    """One alert version of a collection: the stream entry that logged it and its objects."""

    entry_id: str
    added: str
    objects: list[dict[str, Any]]


@dataclass(slots=True)
class Page:
    objects: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (object, added)
    more: bool = False
    last_entry: str | None = None


def is_current(event: str, revision: int, alert: Stored) -> bool:
    """Whether an event of type `event` at `revision` logged the alert's current version."""
    if alert.status == "retracted":
        return event == "retracted"
    return event != "retracted" and revision == _revision(alert.doc)


def _revision(doc: dict[str, Any]) -> int:
    value = doc.get("revision", 1)
    return value if isinstance(value, int) else 1


class CollectionReader:
    """Reads one collection's items in stream order; a new reader per request (it caches the
    senders' profiles it looks up)."""

    def __init__(self, redis: Redis, keys: Keys, nodes: NodeRegistry) -> None:
        self._redis = redis
        self._keys = keys
        self._nodes = nodes
        self._senders: dict[str, Sender] = {}

    async def items(self, source: Source, after: str | None) -> AsyncIterator[Item]:
        """The collection's current alert versions logged after stream id `after`, oldest
        first, that `source.reader` may see."""
        low = f"({after}" if after else "-"
        while True:
            raw = await self._redis.xrange(source.stream_key, low, "+", count=READ_CHUNK)
            if not raw:
                return
            entries = [_entry(entry_id, fields) for entry_id, fields in raw]
            wanted = [e for e in entries if e is not None]
            for start in range(0, len(wanted), LOAD_CHUNK):
                chunk = wanted[start : start + LOAD_CHUNK]
                alerts = await self._load(sorted({e.hub_id for e in chunk}))
                checks = await self._load_fact_checks(
                    sorted({e.fact_check_id for e in chunk if e.fact_check_id})
                )
                for entry in chunk:
                    alert = alerts.get(entry.hub_id)
                    if alert is None or not may_see(alert.sharing, source.reader):
                        continue
                    objects = await self._objects(entry, alert, checks)
                    if objects:
                        yield Item(entry.id, date_added(entry.id), objects)
            low = f"({raw[-1][0].decode()}"
            if len(raw) < READ_CHUNK:
                return

    async def _objects(
        self, entry: Entry, alert: Stored, checks: dict[str, StoredFactCheck]
    ) -> list[dict[str, Any]]:
        """The objects of the version `entry` logged, if it is still the current one: of the
        alert, or of a fact-check on it (shown to whoever may see that alert)."""
        if not entry.fact_check_id:
            if not is_current(entry.event, entry.revision, alert):
                return []
            return alert_objects(await self._version(alert))
        check = checks.get(entry.fact_check_id)
        retracted = entry.event == FACT_CHECK_RETRACTED
        if (
            check is None
            or check.hub_id != alert.hub_id
            or check.revision != entry.revision
            or (check.status == "retracted") != retracted
        ):
            return []
        version = FactCheckVersion(
            fact_check_id=check.id,
            hub_id=check.hub_id,
            tlp=alert.sharing.tlp,
            doc=check.doc,
            checker=await self._sender(check.checker, None),
            received_at=check.received_at,
            updated_at=check.updated_at,
            retracted_at=check.retracted_at,
            status=check.status,
        )
        return fact_check_objects(version)

    async def _load_fact_checks(self, ids: list[str]) -> dict[str, StoredFactCheck]:
        if not ids:
            return {}
        found = await load_fact_checks(self._redis, self._keys, ids)
        return {c.id: c for c in found if c is not None}

    async def _load(self, hub_ids: list[str]) -> dict[str, Stored]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for hub_id in hub_ids:
                pipe.hmget(self._keys.alert(hub_id), list(FIELDS))
            rows = await pipe.execute()
        found = (Stored.from_row(h, r) for h, r in zip(hub_ids, rows, strict=True))
        return {a.hub_id: a for a in found if a is not None}

    async def _version(self, alert: Stored) -> AlertVersion:
        return AlertVersion(
            hub_id=alert.hub_id,
            doc=alert.doc,
            sender=await self._sender(alert.sharing.sender, alert.sharing.sender_country),
            received_at=alert.received_at,
            updated_at=alert.updated_at,
            retracted_at=alert.retracted_at,
            status=alert.status,
        )

    async def _sender(self, node_id: str, country: str | None) -> Sender:
        found = self._senders.get(node_id)
        if found is None:
            node = await self._nodes.get(node_id)
            if node is None:  # a sender's profile outlives its token; this is only a fallback
                found = Sender(node_id, node_id, country, "government")
            else:
                found = Sender(node.id, node.name, node.country, node.kind, node.created_at)
            self._senders[node_id] = found
        return found

    async def page(self, source: Source, after: str | None, limit: int, match: Match) -> Page:
        """Up to `limit` objects that `match` selects, whole alert versions at a time (a
        version with more objects than `limit` alone fills a page), each (id, version) once per
        page; `more` when another version with selected objects follows."""
        page = Page()
        seen: set[tuple[str, str]] = set()
        items = self.items(source, after)
        try:
            async for item in items:
                selected = [o for o in item.objects if match.selects(o, item.added)]
                fresh = [o for o in selected if _key(o, item.added) not in seen]
                if not fresh:
                    continue
                if page.objects and len(page.objects) + len(fresh) > limit:
                    page.more = True
                    break
                for obj in fresh:
                    seen.add(_key(obj, item.added))
                    page.objects.append((obj, item.added))
                page.last_entry = item.entry_id
        finally:
            await items.aclose()
        return page


def _key(obj: dict[str, Any], added: str) -> tuple[str, str]:
    return obj["id"], obj.get("modified") or obj.get("created") or added


@dataclass(frozen=True, slots=True)
class Entry:
    """A stream entry about an alert or a fact-check on one. The log writes `created`, a
    subscription feed `alert.created`; both are read as `created`."""

    id: str
    event: str
    hub_id: str
    revision: int
    fact_check_id: str = ""


def _entry(entry_id: bytes, data: dict[bytes, bytes]) -> Entry | None:
    """The entry, or None for any other kind (a node's registration)."""
    event = data.get(b"type", b"").decode().removeprefix("alert.")
    hub_id = data.get(b"hub_id", b"").decode()
    fact_check_id = data.get(b"fact_check_id", b"").decode()
    known = event in ALERT_EVENTS or (event in FACT_CHECK_EVENTS and fact_check_id)
    if not known or not hub_id:
        return None
    try:
        revision = int(data.get(b"revision", b"1"))
    except ValueError:
        return None
    return Entry(entry_id.decode(), event, hub_id, revision, fact_check_id)

"""Reading a subscription's feed, the one store behind pull, SSE and webhooks. The sharing policy
is checked again on every read: an alert whose sender has since withheld it from the reader is
left out, whichever way the feed is read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hub.delivery.feed_events import (
    FeedEntry,
    FeedPage,
    Rendered,
    event_json,
    may_have_claims,
    registration_json,
)
from hub.delivery.lru import LruCache
from hub.errors import HistoryTruncated
from hub.ids import now_rfc3339, stream_id
from hub.ingest.alert_views import StoredAlert, load_alerts
from hub.ingest.fact_checks import load_fact_checks
from hub.ingest.similar_views import SimilarViews
from hub.logs import get_logger
from hub.nodes import Node
from hub.policy import Sharing, may_see
from hub.store.batching import ScriptBatcher
from hub.store.keys import Keys
from hub.store.redis_faults import refusal_code
from hub.store.scripts import Scripts

log = get_logger("hub.feeds")

T = TypeVar("T")
STATE_TTL_S = 1.0
BODY_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AlertState:
    marker: str  # revision and status: a new one means a new body (and perhaps new sharing)
    read_at: float


def state_marker(revision: object, status: str) -> str:
    return f"{revision}:{status}"


class FeedReader:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        batcher: ScriptBatcher,
        dedup_window_s: int = 604_800,
        similar: SimilarViews | None = None,
    ) -> None:
        self._redis = redis
        self._similar = similar
        self._window_ms = dedup_window_s * 1000
        self._keys = keys
        self._scripts = scripts
        self._batcher = batcher
        self._bodies: LruCache[Rendered] = LruCache(
            4096, weigh=lambda r: len(r.body), max_weight=BODY_CACHE_BYTES
        )
        self._state_cache: LruCache[AlertState] = LruCache(4096)
        self._in_flight: dict[object, asyncio.Future[Any]] = {}

    async def rendered(self, entries: list[FeedEntry]) -> dict[str, Rendered | None]:
        """Each entry's body as SSE and webhooks send it, with the sharing read together with
        that body (None when the alert is gone). A body is rendered once per process and alert
        state (revision, status) for every subscriber that gets the same event. The state is
        looked up at most STATE_TTL_S old, so an update that withholds an alert applies to
        every read within that time; a body and the sharing it is checked against always come
        from one read."""
        markers = await self._markers(sorted({e.hub_id for e in entries if e.is_alert}))
        out: dict[str, Rendered | None] = {}
        for entry in entries:
            if not entry.is_alert:
                out[entry.id] = Rendered(None, orjson.dumps(registration_json(entry)))
                continue
            if entry.is_fact_check:
                # Rare, and shown in its current form: rendered each time, not cached.
                out[entry.id] = await self._render_fact_check(entry)
                continue
            marker = markers.get(entry.hub_id)
            if marker is None:
                out[entry.id] = None
                continue
            rendered = self._bodies.get((entry.id, entry.type, marker))
            if rendered is None:
                rendered = await self._single_flight((entry.id, entry.type), self._render(entry))
            out[entry.id] = rendered
        return out

    async def _render(self, entry: FeedEntry) -> Rendered | None:
        alert = (await self.alerts([entry.hub_id])).get(entry.hub_id)
        if alert is None:
            return None
        event = event_json(entry, alert)
        rendered = Rendered(
            alert.sharing, orjson.dumps(event), event if may_have_claims(alert) else None
        )
        marker = state_marker(alert.doc.get("revision"), alert.status)
        self._bodies.put((entry.id, entry.type, marker), rendered)
        return rendered

    async def personal(
        self, entries: list[FeedEntry], readers: tuple[Node, ...]
    ) -> dict[str, bytes | None]:
        """Each entry's body for `readers` (None where they may not see it now): rendered, with
        the alert's story and similar reports as the readers may see them (similar_views)."""
        rendered = await self.rendered(entries)
        out: dict[str, bytes | None] = {}
        claims: dict[str, dict[str, Any]] = {}
        for entry in entries:
            event = rendered.get(entry.id)
            if event is None or not event.visible_to(readers):
                out[entry.id] = None
            elif event.event is None or self._similar is None:
                out[entry.id] = event.body
            else:
                claims[entry.id] = event.event
        if claims:
            annotated = await self._annotate(list(claims.values()), readers)
            out.update({k: orjson.dumps(v) for k, v in zip(claims, annotated, strict=True)})
        return out

    async def _annotate(
        self, events: list[dict[str, Any]], readers: tuple[Node, ...]
    ) -> list[dict[str, Any]]:
        """The events with their alerts' `story_id` and `similar` as `readers` may see them."""
        if self._similar is None:
            return events
        subjects = await self._similar.subjects(sorted({e["hub_id"] for e in events}))
        found = await self._similar.annotations(list(subjects.values()), readers)
        return [
            {**e, "alert": {**e["alert"], **found[e["hub_id"]]}} if e["hub_id"] in found else e
            for e in events
        ]

    async def _render_fact_check(self, entry: FeedEntry) -> Rendered | None:
        if entry.withheld:
            return None
        alert = (await self.alerts([entry.hub_id])).get(entry.hub_id)
        fact_checks = await self.fact_checks([entry.fact_check_id])
        if alert is None or entry.fact_check_id not in fact_checks:
            return None
        body = event_json(entry, alert, fact_checks[entry.fact_check_id])
        return Rendered(alert.sharing, orjson.dumps(body), body if may_have_claims(alert) else None)

    async def fact_checks(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored fact-checks among `ids`, in the form events carry them."""
        unique = sorted(set(ids))
        loaded = await load_fact_checks(self._redis, self._keys, unique)
        return {f.id: f.public_json() for f in loaded if f is not None}

    async def _markers(self, hub_ids: list[str]) -> dict[str, str]:
        now = time.monotonic()
        found: dict[str, str] = {}
        for hub_id in hub_ids:
            cached = self._state_cache.get(hub_id)
            if cached is None or cached.read_at <= now - STATE_TTL_S:
                cached = await self._single_flight(("state", hub_id), self._read_state(hub_id))
            if cached is not None:
                found[hub_id] = cached.marker
        return found

    async def _read_state(self, hub_id: str) -> AlertState | None:
        revision, status = await self._redis.hmget(self._keys.alert(hub_id), ["revision", "status"])
        if revision is None:
            return None
        state = AlertState(
            state_marker(revision.decode(), (status or b"").decode()), time.monotonic()
        )
        self._state_cache.put(hub_id, state)
        return state

    async def _single_flight(self, key: object, work: Coroutine[Any, Any, T]) -> T:
        """One read or render per key at a time: concurrent callers (the streams one feed-news
        message wakes) share its result."""
        running = self._in_flight.get(key)
        if running is not None:
            work.close()
            return await asyncio.shield(running)
        task = asyncio.ensure_future(work)
        self._in_flight[key] = task
        task.add_done_callback(lambda _: self._in_flight.pop(key, None))
        # Shielded: one waiter cancelled (its client gone) does not cancel the others' read.
        return await asyncio.shield(task)

    async def check_not_truncated(self, sub_id: str, after: str) -> None:
        """HistoryTruncated when entries after `after` may have been trimmed away. The message
        does not name where the feed now starts: that may be an event the reader may not see."""
        trimmed = await self._redis.hget(self._keys.feed_state(sub_id), "trimmed_upto")
        if trimmed is not None and stream_id(after) < stream_id(trimmed.decode()):
            raise HistoryTruncated(
                f"the feed no longer holds every event after {after}; read it again from its "
                "start (no cursor) to get what it holds"
            )

    async def note_read(self, sub_id: str, entry: FeedEntry) -> None:
        """Record that a pull or SSE reader of `sub_id` has been handed `entry` (its lag). When
        Redis refuses writes (maxmemory) the reader still gets its events: only the lag stays
        behind until a later read is noted."""
        if entry.seq <= 0:
            return
        try:
            await self._batcher.call(
                self._scripts.note_read,
                keys=[self._keys.feed_state(sub_id)],
                args=[entry.seq, now_rfc3339()],
            )
        except ResponseError as e:
            if refusal_code(e) is None:
                raise
            log.warning("feed_read_not_noted", subscription=sub_id, refusal=refusal_code(e))

    async def entries(self, sub_id: str, after: str | None, limit: int) -> list[FeedEntry]:
        """Up to `limit` entries after `after` (from the oldest held when None), oldest first."""
        low = f"({after}" if after else "-"
        raw = await self._batcher.command(
            "XRANGE", self._keys.feed(sub_id), low, "+", "COUNT", limit
        )
        return [FeedEntry.from_stream(entry_id, fields) for entry_id, fields in raw]

    async def page(
        self, sub_id: str, after: str | None, limit: int, readers: tuple[Node, ...]
    ) -> FeedPage:
        """Up to `limit` events after `after` that every one of `readers` may see, and the cursor
        to go on from: the last of them, or `after` when there is none. Entries they may not see
        are read past, never stood on, so the cursor moves only when something visible came."""
        events: list[dict[str, Any]] = []
        position: str | None = after
        last_read: FeedEntry | None = None
        while len(events) < limit:
            wanted = limit - len(events)
            entries = await self.entries(sub_id, position, wanted)
            if not entries:
                break
            events += await self.events(await self.retyped(sub_id, entries, readers), readers)
            last_read = entries[-1]
            position = last_read.id
            if len(entries) < wanted:
                break
        return FeedPage(events, events[-1]["id"] if events else after, last_read)

    async def latest(
        self, sub_id: str, limit: int, readers: tuple[Node, ...]
    ) -> list[dict[str, Any]]:
        """Up to `limit` of the feed's newest events that every one of `readers` may see,
        newest first (what a feed reader shows)."""
        found: list[dict[str, Any]] = []
        upper = "+"
        while len(found) < limit:
            raw = await self._batcher.command(
                "XREVRANGE", self._keys.feed(sub_id), upper, "-", "COUNT", limit
            )
            if not raw:
                break
            newest_first = [FeedEntry.from_stream(entry_id, fields) for entry_id, fields in raw]
            in_order = list(reversed(newest_first))
            shown = await self.events(await self.retyped(sub_id, in_order, readers), readers)
            found += reversed(shown)
            upper = f"({newest_first[-1].id}"
            if len(raw) < limit:
                break
        return found[:limit]

    async def retyped(
        self, sub_id: str, entries: list[FeedEntry], readers: tuple[Node, ...]
    ) -> list[FeedEntry]:
        """The entries with `alert.corroborated` turned into `alert.created` wherever none of
        the reports of the cluster that the feed had before it (within the dedup window) is one
        all of `readers` may see now. A feed is typed for its owner when it is written; read by
        the operator too, or after a sender withheld an earlier report, a corroboration would
        otherwise tell of a report the reader may not see. What the feed had is read from its
        own record (feed_append_lua, `r:<cluster>`), so the answer does not change with later
        updates that move reports between clusters.

        A fact-check's event reached the feed because the feed had a report of its cluster: it
        is marked `withheld` (shown to nobody) when none of the feed's earlier reports of the
        cluster, at any time, is one all of `readers` may see now, for the same reason."""
        doubtful = [e for e in entries if e.type == "alert.corroborated" or e.is_fact_check]
        if not doubtful:
            return entries
        clusters = sorted({e.cluster_id for e in doubtful})
        rows = await self._redis.hmget(self._keys.feed_state(sub_id), [f"r:{c}" for c in clusters])
        had: dict[str, list[tuple[str, str]]] = {}
        for cluster_id, row in zip(clusters, rows, strict=True):
            if row is not None:
                pairs = (item.split(" ", 1) for item in row.decode().split(",") if item)
                had[cluster_id] = [(event_id, hub_id) for event_id, hub_id in pairs]
        sharing = await self._sharing(sorted({h for pairs in had.values() for _, h in pairs}))
        seen = {h for h, s in sharing.items() if all(may_see(s, reader) for reader in readers)}
        out = []
        for entry in entries:
            # A feed written before the record was kept has none: its typing stands.
            if entry.cluster_id not in had or not (
                entry.type == "alert.corroborated" or entry.is_fact_check
            ):
                out.append(entry)
                continue
            grounds = [
                (event_id, hub_id)
                for event_id, hub_id in had[entry.cluster_id]
                if hub_id in seen and stream_id(event_id) < stream_id(entry.id)
            ]
            if entry.is_fact_check:
                if not grounds:
                    entry = replace(entry, withheld=True)
            elif not any(
                hub_id != entry.hub_id and self._earlier(event_id, entry.id)
                for event_id, hub_id in grounds
            ):
                entry = replace(entry, type="alert.created")
            out.append(entry)
        return out

    def _earlier(self, then_id: str, event_id: str) -> bool:
        """Whether event `then_id` came before `event_id`, within the dedup window."""
        then, now = stream_id(then_id), stream_id(event_id)
        return then < now and now[0] - then[0] <= self._window_ms

    async def _sharing(self, hub_ids: list[str]) -> dict[str, Sharing]:
        if not hub_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for hub_id in hub_ids:
                pipe.hget(self._keys.alert(hub_id), "meta")
            rows = await pipe.execute()
        return {
            h: Sharing.from_json(orjson.loads(meta), h)
            for h, meta in zip(hub_ids, rows, strict=True)
            if meta is not None
        }

    async def events(
        self, entries: list[FeedEntry], readers: tuple[Node, ...]
    ) -> list[dict[str, Any]]:
        """The entries as events, leaving out alerts any of `readers` may not see (now)."""
        alerts = await self.alerts([e.hub_id for e in entries if e.is_alert])
        fact_checks = await self.fact_checks([e.fact_check_id for e in entries if e.is_fact_check])
        out = []
        for entry in entries:
            if not entry.is_alert:
                out.append(registration_json(entry))
                continue
            if entry.withheld:
                continue
            fact_check = fact_checks.get(entry.fact_check_id) if entry.is_fact_check else None
            if entry.is_fact_check and fact_check is None:
                continue
            alert = alerts.get(entry.hub_id)
            if alert is not None and all(may_see(alert.sharing, r) for r in readers):
                out.append(event_json(entry, alert, fact_check))
        with_claims = [
            i for i, e in enumerate(out) if e.get("hub_id") and may_have_claims(alerts[e["hub_id"]])
        ]
        if with_claims:
            annotated = await self._annotate([out[i] for i in with_claims], readers)
            for i, event in zip(with_claims, annotated, strict=True):
                out[i] = event
        return out

    async def alert_ids(self, sub_id: str, chunk: int = 10_000) -> list[str]:
        """The hub ids of every alert the feed holds an event of, in the order of their first
        event (fact-check events and registrations name no alert of their own)."""
        found: dict[str, None] = {}
        low = "-"
        while True:
            raw = await self._batcher.command(
                "XRANGE", self._keys.feed(sub_id), low, "+", "COUNT", chunk
            )
            for entry_id, fields in raw:
                entry = FeedEntry.from_stream(entry_id, fields)
                if entry.is_alert and not entry.is_fact_check:
                    found.setdefault(entry.hub_id)
            if len(raw) < chunk:
                return list(found)
            low = f"({raw[-1][0].decode()}"

    async def has_had(self, sub_id: str, hub_id: str) -> bool:
        """Whether the feed was ever given an event of the alert (feed_append_lua's `h:`)."""
        return bool(await self._redis.hexists(self._keys.feed_state(sub_id), f"h:{hub_id}"))

    async def alerts(self, hub_ids: list[str]) -> dict[str, StoredAlert]:
        loaded = await load_alerts(self._redis, self._keys, sorted(set(hub_ids)))
        return {alert.hub_id: alert for alert in loaded if alert is not None}

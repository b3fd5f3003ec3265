"""Clusters as one caller may see them: the fact-checkers' triage queue.

A cluster is the reports of one content (dedup.py); to a caller it is only the reports it may
see, and a cluster none of whose reports it may see does not exist for it. Every figure (the
languages, countries, first and last seen, how many nodes reported it, its fact-checks), every
filter, the order and the paging are computed from those reports alone, so nothing in an answer
depends on a report the caller may not see.

The index is the listing's own: the per-audience indexes of reports (keys.py, Keys.audience)
that the caller reads (policy.reader_audiences), merged newest first. The first live report of a
cluster met in that merge is its newest one the caller may see, so clusters come in the order of
`last_seen` as the reports are read, and a page by `last_seen` reads no further back than its
last cluster; its cursor is that report (sealed by the caller, as listings' are). `spread` ranks
every cluster seen within the window (`since`, by default the dedup window) by how far its
visible reports travelled: distinct sender countries, then languages, then reports.

A cluster's `story_id` is its earliest visible report's story (similar_views.py), worked out as
the caller sees it, so that a desk can group the queue by story (or ask for one story's
clusters with `story_id=`) without a story ever naming or counting a report it may not see.
The queue names stories only when asked (`include=story_id`): finding one costs a similarity
read per cluster, milliseconds when many claims look alike."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis

from hub.errors import NotFound
from hub.ids import ulid_floor, utc_now
from hub.ingest.alert_views import ALERT_FIELDS, READ_CHUNK, IndexStream, StoredAlert, merge_newest
from hub.ingest.fact_checks import FactCheckStore, StoredFactCheck
from hub.ingest.similar_views import SimilarViews
from hub.nodes import Node
from hub.policy import Sharing, may_see, reader_audiences
from hub.store.keys import Keys
from hub.store.scripts import Scripts

CLUSTER_ID = re.compile(r"^cl_[0-9a-f]{24}$")
SORTS = ("last_seen", "spread")
MAX_CLAIMS = 20
VIEW_BATCH = 50  # clusters whose reports are read together while a page by last_seen fills
SCRIPT_CHUNK = 1000  # ids per call of the read scripts


@dataclass(frozen=True, slots=True)
class ClusterQuery:
    kind: str | None = None
    target_country: str | None = None
    language: str | None = None
    fact_checked: bool | None = None
    since: datetime | None = None
    sort: str = "last_seen"
    limit: int = 50
    story_id: str | None = None
    with_story: bool = False  # each cluster's story_id (include=story_id; story_id= implies it)


def _language_matches(wanted: str, tags: set[str]) -> bool:
    """RFC 4647 basic filtering: "sr" matches sr, sr-Latn and sr-Cyrl; case does not count."""
    wanted = wanted.lower()
    return any(t.lower() == wanted or t.lower().startswith(wanted + "-") for t in tags)


def _ms(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class ClusterView:
    """A cluster as one caller sees it: its reports that caller may see (oldest first) and
    the fact-checks it may see."""

    cluster_id: str
    reports: list[StoredAlert]
    fact_checks: list[StoredFactCheck]

    @property
    def live(self) -> list[StoredAlert]:
        return [r for r in self.reports if r.status != "retracted"]

    @property
    def newest_live(self) -> str | None:
        live = self.live
        return live[-1].hub_id if live else None

    def _counted(self) -> list[StoredAlert]:
        return self.live or self.reports

    def languages(self) -> set[str]:
        found: set[str] = set()
        for report in self.live:
            found.update(x for x in report.doc.get("languages", ()) if isinstance(x, str))
            for claim in report.doc.get("claims", ()):
                if isinstance(claim, dict) and isinstance(claim.get("language"), str):
                    found.add(claim["language"])
        return found

    def targets(self) -> set[str]:
        return {c for r in self.live for c in r.doc.get("target_countries", ())}

    def sender_countries(self) -> set[str]:
        return {r.sharing.sender_country for r in self.live if r.sharing.sender_country}

    @property
    def fact_checked(self) -> bool:
        return any(f.active for f in self.fact_checks)

    def last_seen(self) -> str:
        return self._counted()[-1].received_at

    def spread_key(self) -> tuple[int, int, int, int]:
        return (
            len(self.sender_countries()),
            len(self.languages()),
            len(self.live),
            _ms(self.last_seen()),
        )

    def matches(self, query: ClusterQuery) -> bool:
        if not self.live:
            return False
        if query.kind is not None and self.live[0].doc.get("kind") != query.kind:
            return False
        if query.target_country is not None and query.target_country not in self.targets():
            return False
        if query.language is not None and not _language_matches(query.language, self.languages()):
            return False
        if query.fact_checked is not None and self.fact_checked != query.fact_checked:
            return False
        since = query.since
        return since is None or _ms(self.last_seen()) >= since.timestamp() * 1000

    @property
    def first_report(self) -> str:
        return self._counted()[0].hub_id

    def summary_json(self, story: tuple[str | None] | None = None) -> dict[str, Any]:
        """The cluster in the queue; with its story_id when `story` holds it (as a 1-tuple)."""
        counted = self._counted()
        claims: dict[tuple[str, str], dict[str, str]] = {}
        for report in counted:
            for claim in report.doc.get("claims", ()):
                if isinstance(claim, dict) and isinstance(claim.get("text"), str):
                    key = (claim["text"], str(claim.get("language", "")))
                    claims.setdefault(key, {"text": key[0], "language": key[1]})
        countries, languages = self.sender_countries(), self.languages()
        return {
            "cluster_id": self.cluster_id,
            "kind": counted[0].doc.get("kind"),
            "title": counted[0].doc.get("title"),
            "claims": list(claims.values())[:MAX_CLAIMS],
            "languages": sorted(languages),
            "target_countries": sorted(self.targets()),
            "sender_countries": sorted(countries),
            "report_count": len(self.live),
            "node_count": len({r.sharing.sender for r in self.live}),
            "first_seen": counted[0].received_at,
            "last_seen": counted[-1].received_at,
            "spread": {
                "countries": len(countries),
                "languages": len(languages),
                "reports": len(self.live),
            },
            **({"story_id": story[0]} if story is not None else {}),
            "fact_checked": self.fact_checked,
            "fact_checks": [f.public_json() for f in self.fact_checks],
        }

    def detail_json(self, now: datetime, story_id: str | None) -> dict[str, Any]:
        out = self.summary_json((story_id,))
        out["reports"] = [
            {
                "hub_id": r.hub_id,
                "node": r.sharing.sender,
                "country": r.sharing.sender_country,
                "title": r.doc.get("title"),
                "tlp": r.sharing.tlp,
                "languages": r.doc.get("languages", []),
                "target_countries": r.doc.get("target_countries", []),
                "reported_at": r.received_at,
                "status": r.current_status(now),
            }
            for r in self.reports
        ]
        return out


class ClusterViews:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        fact_checks: FactCheckStore,
        window_s: int,
        similar: SimilarViews | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._fact_checks = fact_checks
        self._window_s = window_s
        self._similar = similar

    async def stories(self, views: list[ClusterView], caller: Node) -> dict[str, str | None]:
        """{cluster_id: story_id} of each cluster (with reports), as the caller sees it."""
        firsts = {v.cluster_id: v.first_report for v in views if v.reports}
        if self._similar is None or not firsts:
            return dict.fromkeys(firsts)
        subjects = await self._similar.subjects(sorted(set(firsts.values())))
        found = await self._similar.annotations(list(subjects.values()), (caller,))
        return {c: found[h]["story_id"] if h in found else None for c, h in firsts.items()}

    async def _in_story(
        self, views: list[ClusterView], query: ClusterQuery, caller: Node
    ) -> tuple[list[ClusterView], dict[str, str | None]]:
        """The views of the query's story (all of them when it names none), and their stories
        when the query wants them (finding a story costs a similarity read per cluster)."""
        if query.story_id is None and not query.with_story:
            return views, {}
        stories = await self.stories(views, caller)
        if query.story_id is None:
            return views, stories
        return [v for v in views if stories.get(v.cluster_id) == query.story_id], stories

    async def _hashes(self, prefix: str, ids: list[str], fields: list[str]) -> list[list[Any]]:
        """HMGET of `fields` of each {core}<prefix><id>, in calls of read_hashes_lua (the names
        as keys.py builds them: "alert:" for Keys.alert)."""
        out: list[list[Any]] = []
        for start in range(0, len(ids), SCRIPT_CHUNK):
            chunk = ids[start : start + SCRIPT_CHUNK]
            out += await self._scripts.read_hashes(
                keys=[self._keys.core], args=[self._keys.core, prefix, len(fields), *fields, *chunk]
            )
        return out

    async def _members(self, prefix: str, kind: str, ids: list[str]) -> list[list[bytes]]:
        """Every member of each {core}<prefix><id> (a list or a sorted set)."""
        out: list[list[bytes]] = []
        for start in range(0, len(ids), SCRIPT_CHUNK):
            chunk = ids[start : start + SCRIPT_CHUNK]
            out += await self._scripts.read_members(
                keys=[self._keys.core], args=[self._keys.core, prefix, kind, *chunk]
            )
        return out

    async def one(self, cluster_id: str, caller: Node) -> dict[str, Any]:
        """The cluster as the caller sees it; NotFound, exactly as for an unknown id, when it
        may see none of its reports."""
        if CLUSTER_ID.match(cluster_id):
            view = (await self.views([cluster_id], caller)).get(cluster_id)
            if view is not None and view.reports:
                story = (await self.stories([view], caller)).get(cluster_id)
                return view.detail_json(utc_now(), story)
        raise NotFound(f"no cluster {cluster_id}")

    async def views(self, cluster_ids: list[str], caller: Node) -> dict[str, ClusterView]:
        """Each cluster with the reports and fact-checks the caller may see."""
        unique = sorted(set(cluster_ids))
        lists = await self._members("cluster:", "list", unique)  # Keys.cluster
        members = {c: [m.decode() for m in row] for c, row in zip(unique, lists, strict=True)}
        every = sorted({h for ids in members.values() for h in ids})
        rows = await self._hashes("alert:", every, list(ALERT_FIELDS))  # Keys.alert
        meta_at = ALERT_FIELDS.index("meta")
        loaded: dict[str, StoredAlert] = {}
        for hub_id, row in zip(every, rows, strict=True):
            meta = row[meta_at]
            # Only what the caller may see is parsed further (its body is read either way).
            if meta is None or not may_see(Sharing.from_json(orjson.loads(meta), hub_id), caller):
                continue
            alert = StoredAlert.from_row(hub_id, row)
            if alert is not None:
                loaded[hub_id] = alert
        fact_checks = await self._fact_checks.of_clusters(unique, caller)
        return {
            c: ClusterView(
                c,
                # A report moved to another cluster since the list was read is left out.
                sorted(
                    (loaded[h] for h in ids if h in loaded and loaded[h].cluster_id == c),
                    key=lambda a: a.hub_id,
                ),
                fact_checks[c],
            )
            for c, ids in members.items()
        }

    async def listing(
        self, caller: Node, query: ClusterQuery, position: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the caller's clusters and the position to go on from (None when the page
        is not full). `position` is what an earlier page returned, for the same sort."""
        if query.sort == "spread":
            return await self._by_spread(caller, query, position)
        return await self._by_last_seen(caller, query, position)

    async def _by_last_seen(
        self, caller: Node, query: ClusterQuery, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        lowest = ulid_floor(query.since) if query.since else ""
        chosen: list[ClusterView] = []
        stories: dict[str, str | None] = {}
        position: str | None = None
        met: set[str] = set()
        batch: list[tuple[str, str]] = []

        async def take(pending: list[tuple[str, str]]) -> bool:
            nonlocal position
            views = await self.views([c for _, c in pending], caller)
            # Met below the cursor at a report that is not its newest: it was on an earlier
            # page (or moved since), and is not shown again.
            fitting = [
                views[c]
                for h, c in pending
                if views[c].newest_live == h and views[c].matches(query)
            ]
            kept, found = await self._in_story(fitting, query, caller)
            stories.update(found)
            for view in kept:
                chosen.append(view)
                position = view.newest_live
                if len(chosen) == query.limit:
                    return True
            return False

        full = False
        async for hub_id, cluster_id in self._visible_reports(caller, after, lowest):
            if cluster_id in met:
                continue
            met.add(cluster_id)
            batch.append((hub_id, cluster_id))
            if len(batch) >= min(VIEW_BATCH, max(8, query.limit - len(chosen))):
                full = await take(batch)
                batch = []
                if full:
                    break
        if batch and not full:
            full = await take(batch)
        return [self._summary(v, query, stories) for v in chosen], (position if full else None)

    async def _by_spread(
        self, caller: Node, query: ClusterQuery, position: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        after: tuple[int, int, int, int, str] | None = None
        if position is not None:
            floor_ms_text, *rest = position.split("|")
            floor_ms = int(floor_ms_text)
            after = (int(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]), rest[4])
        else:
            start = query.since or utc_now() - timedelta(seconds=self._window_s)
            floor_ms = int(start.timestamp() * 1000)
        lowest = ulid_floor(datetime.fromtimestamp(floor_ms / 1000, tz=UTC))
        met: dict[str, str] = {}
        async for hub_id, cluster_id in self._visible_reports(caller, None, lowest):
            met.setdefault(cluster_id, hub_id)
        views = await self.views(list(met), caller) if met else {}

        def rank(v: ClusterView) -> tuple[int, int, int, int, str]:
            c, lang, r, ms = v.spread_key()
            return (-c, -lang, -r, -ms, v.cluster_id)

        ranked = sorted((v for v in views.values() if v.matches(query)), key=rank)
        if after is not None:
            mark = (-after[0], -after[1], -after[2], -after[3], after[4])
            ranked = [v for v in ranked if rank(v) > mark]
        stories: dict[str, str | None] = {}
        if query.story_id is not None:
            ranked, stories = await self._in_story(ranked, query, caller)
        page = ranked[: query.limit]
        if query.story_id is None and query.with_story:
            stories = await self.stories(page, caller)
        next_position = None
        if len(page) == query.limit:
            last = page[-1]
            c, lang, r, ms = last.spread_key()
            next_position = f"{floor_ms}|{c}|{lang}|{r}|{ms}|{last.cluster_id}"
        return [self._summary(v, query, stories) for v in page], next_position

    @staticmethod
    def _summary(
        view: ClusterView, query: ClusterQuery, stories: dict[str, str | None]
    ) -> dict[str, Any]:
        wanted = query.with_story or query.story_id is not None
        return view.summary_json((stories.get(view.cluster_id),) if wanted else None)

    async def _visible_reports(
        self, caller: Node, after: str | None, lowest: str
    ) -> AsyncIterator[tuple[str, str]]:
        """(hub id, cluster id) of every live report the caller may see, newest first, below
        `after` and at or above `lowest`, read from the listing indexes it reads."""
        whole, since_registered = reader_audiences(caller)
        streams = [IndexStream(self._keys.audience(n), after, lowest) for n in whole] + [
            IndexStream(self._keys.audience(n), after, max(lowest, caller.since_id))
            for n in since_registered
        ]
        while True:
            wanting = [s for s in streams if s.wants_more]
            if wanting:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for stream in wanting:
                        pipe.zrevrangebylex(
                            stream.key, stream.upper, stream.lower, start=0, num=READ_CHUNK
                        )
                    pages = await pipe.execute()
                for stream, page in zip(wanting, pages, strict=True):
                    stream.take([m.decode() for m in page], READ_CHUNK)
            candidates = merge_newest(streams, READ_CHUNK)
            if not candidates:
                return
            rows = await self._hashes("alert:", candidates, ["meta", "cluster_id", "status"])
            for hub_id, (meta, cluster_id, status) in zip(candidates, rows, strict=True):
                if meta is None or cluster_id is None or status == b"retracted":
                    continue
                if may_see(Sharing.from_json(orjson.loads(meta), hub_id), caller):
                    yield hub_id, cluster_id.decode()

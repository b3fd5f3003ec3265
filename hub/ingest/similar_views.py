"""Similar reports and stories, as the readers of an alert may see them (docs/claims.md).

Both are worked out when read, from the similarity index (keys.py, Keys.similar) and the
claims' signatures kept with each alert (its `sim` field), and only from reports every reader
may see; nothing about them is stored that a report the readers may not see could change:

- `similar`: the reports of other clusters whose claims match this alert's (a score at least
  the threshold, signature.alert_match), each with its score and why ("claim": the same claim
  edited or re-scripted; "entities": the same names, numbers and dates, as a telling in another
  language has them), best first, at most MAX_SIMILAR;
- `story_id`: named after the story's first report: an alert's parent is the earliest report
  before it (of any cluster) whose claims match its own, and the root is reached by following
  parents (at most MAX_STORY_HOPS). Near-duplicates have the same earliest match, so they
  share a story; a reader who may not see the first report finds the story named after the
  first it may see. An alert without claims has no story (null).

A link is shown only when every reader may see both reports, and the score of a pair depends
on those two reports alone: a world where other nodes posted reports the readers may not see
gives the same answers (tests/security/test_non_interference.py).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from hub.ingest.similarity.names import display_name
from hub.ingest.similarity.signature import (
    ClaimSignature,
    Match,
    alert_match,
    claims_from_json,
    index_scores,
)
from hub.nodes import Node
from hub.policy import Sharing, may_see
from hub.store.keys import Keys, links_bucket_now

MAX_SIMILAR = 50
MAX_STORY_HOPS = 4
_FIELDS = ["meta", "cluster_id", "sim", "links_bucket"]
_MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Subject:
    """What finding an alert's similar reports takes: its claims and where they are indexed."""

    hub_id: str
    cluster_id: str
    claims: list[ClaimSignature]
    bucket: int | None
    sharing: Sharing | None = None


@dataclass(frozen=True, slots=True)
class Found:
    hub_id: str
    cluster_id: str
    match: Match


def _subject(hub_id: str, row: list[bytes | None]) -> Subject | None:
    meta, cluster_id, sim, bucket = row
    if meta is None:
        return None
    return Subject(
        hub_id=hub_id,
        cluster_id=cluster_id.decode() if cluster_id else "",
        claims=claims_from_json(orjson.loads(sim)) if sim else [],
        bucket=int(bucket) if bucket else None,
        sharing=Sharing.from_json(orjson.loads(meta), hub_id),
    )


def shared_label(key: str) -> str:
    """A shared feature as a reader reads it: "Zvečan (XK)", "500", "15 January", "#kfor"."""
    kind, _, value = key.partition(":")
    if kind in ("p", "h", "o", "k"):
        return display_name(key) or value
    if kind == "m":
        return _MONTH_NAMES[int(value) - 1]
    if kind == "d":
        month, day = value.split("-")
        return f"{int(day)} {_MONTH_NAMES[int(month) - 1]}"
    if kind == "t":
        return "#" + value
    if kind == "a":
        return "@" + value
    if kind == "w":
        return "a shared URL"
    if kind == "x":
        return "a shared media hash"
    return value


class SimilarViews:
    def __init__(
        self, redis: Redis, keys: Keys, window_s: int, threshold: float, story_key: bytes
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._window_s = window_s
        self._threshold = threshold
        self._story_key = story_key

    def story_name(self, root_hub_id: str) -> str:
        """The id of the story whose first report (as its reader sees it) is `root_hub_id`:
        keyed, like cluster ids, so that it names the report without being it."""
        digest = hmac.new(self._story_key, b"story:" + root_hub_id.encode(), hashlib.sha256)
        return "st_" + digest.digest()[:12].hex()

    async def subjects(self, hub_ids: list[str]) -> dict[str, Subject]:
        if not hub_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for hub_id in hub_ids:
                pipe.hmget(self._keys.alert(hub_id), _FIELDS)
            rows = await pipe.execute()
        found = (_subject(h, r) for h, r in zip(hub_ids, rows, strict=True))
        return {s.hub_id: s for s in found if s is not None}

    async def annotate(self, hub_id: str, readers: tuple[Node, ...]) -> dict[str, Any]:
        """{"story_id", "similar"} of one stored alert, as all of `readers` may see it."""
        subject = (await self.subjects([hub_id])).get(hub_id)
        if subject is None:
            return {"story_id": None, "similar": []}
        return (await self.annotations([subject], readers))[hub_id]

    async def annotations(
        self, subjects: list[Subject], readers: tuple[Node, ...]
    ) -> dict[str, dict[str, Any]]:
        """{hub_id: {"story_id", "similar"}} for each subject, as all of `readers` may see it."""
        matches = await self._matches([s for s in subjects if s.claims], readers)
        roots = await self._roots(subjects, matches, readers)
        out: dict[str, dict[str, Any]] = {}
        for subject in subjects:
            best = sorted(
                (f for f in matches.get(subject.hub_id, []) if f.cluster_id != subject.cluster_id),
                key=lambda f: (-round(f.match.score, 3), f.hub_id),
            )[:MAX_SIMILAR]
            root = roots.get(subject.hub_id)
            out[subject.hub_id] = {
                "story_id": self.story_name(root) if root is not None else None,
                "similar": [{"hub_id": f.hub_id, **_match_json(f.match)} for f in best],
            }
        return out

    async def _roots(
        self,
        subjects: list[Subject],
        matches: dict[str, list[Found]],
        readers: tuple[Node, ...],
    ) -> dict[str, str]:
        """Each subject with claims → the first report of its story (module docstring)."""
        parent: dict[str, str | None] = {}
        known = dict(matches)
        pending = [s.hub_id for s in subjects if s.claims]
        for _ in range(MAX_STORY_HOPS + 1):
            wanted = [h for h in pending if h not in known]
            if wanted:
                loaded = await self.subjects(wanted)
                known.update(await self._matches(list(loaded.values()), readers))
                for hub_id in wanted:
                    known.setdefault(hub_id, [])
            following = []
            for hub_id in pending:
                earlier = [f.hub_id for f in known[hub_id] if f.hub_id < hub_id]
                parent[hub_id] = min(earlier) if earlier else None
                if parent[hub_id] is not None and parent[hub_id] not in parent:
                    following.append(parent[hub_id])
            pending = [h for h in following if h is not None]
            if not pending:
                break
        roots: dict[str, str] = {}
        for subject in subjects:
            if not subject.claims:
                continue
            node = subject.hub_id
            for _ in range(MAX_STORY_HOPS):
                up = parent.get(node)
                if up is None:
                    break
                node = up
            roots[subject.hub_id] = node
        return roots

    async def _matches(
        self, subjects: list[Subject], readers: tuple[Node, ...]
    ) -> dict[str, list[Found]]:
        """Each subject's matching reports (any cluster, not itself) that all readers may see."""
        if not subjects:
            return {}
        current = links_bucket_now(self._window_s)
        # Reports copied many times share their index entries: each (window, score) is read
        # once per call, and each subject's candidates are the union of the entries' members.
        plans: list[tuple[Subject, list[tuple[int, str]]]] = []
        for subject in subjects:
            buckets = {current, current - 1}
            if subject.bucket is not None:
                buckets.add(subject.bucket)
            scores = index_scores(subject.claims)
            plans.append((subject, [(b, score) for b in sorted(buckets) for score in scores]))
        entries = sorted({entry for _, wanted in plans for entry in wanted})
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket, score in entries:
                pipe.zrangebyscore(self._keys.similar(bucket), score, score)
            found = await pipe.execute()
        members: dict[tuple[int, str], frozenset[str]] = {
            entry: frozenset(m.rpartition(b":")[0].decode() for m in ms)
            for entry, ms in zip(entries, found, strict=True)
        }
        candidates: dict[str, set[str]] = {}
        for subject, wanted in plans:
            ids: set[str] = set()
            for entry in wanted:
                ids |= members[entry]
            ids.discard(subject.hub_id)
            candidates[subject.hub_id] = ids
        others = await self.subjects(sorted(set().union(*candidates.values())))
        # Whether all readers may see a report depends on it alone, and a pair's match on the
        # pair alone (alert_match is symmetric): each is worked out once per call, as a page of
        # copies of one claim compares every copy with every other.
        visible = {
            other_id: other
            for other_id, other in others.items()
            if other.sharing is not None
            and other.claims
            and all(may_see(other.sharing, reader) for reader in readers)
        }
        pairs: dict[tuple[str, str], Match | None] = {}
        out: dict[str, list[Found]] = {}
        for subject, _ in plans:
            kept = []
            for other_id in sorted(candidates[subject.hub_id]):
                other = visible.get(other_id)
                if other is None:
                    continue
                pair = (min(subject.hub_id, other_id), max(subject.hub_id, other_id))
                if pair in pairs:
                    match = pairs[pair]
                else:
                    match = alert_match(subject.claims, other.claims, self._threshold)
                    pairs[pair] = match
                if match is not None:
                    kept.append(Found(other_id, other.cluster_id, match))
            out[subject.hub_id] = kept
        return out


def _match_json(match: Match) -> dict[str, object]:
    out = match.as_json()
    if "shared" in out:
        out["shared"] = [shared_label(k) for k in match.shared]
    return out

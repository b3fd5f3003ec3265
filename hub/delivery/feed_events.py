"""The events of a feed as every delivery path sends them (API.md): entries read from a feed's
stream, and their JSON. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from hub.ids import utc_now
from hub.ingest.alert_views import StoredAlert
from hub.nodes import Node
from hub.policy import Sharing, may_see

EVENT_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
MAX_STREAM_ID_PART = 2**64 - 1

NODE_REGISTERED = "node.registered"
FACT_CHECKED = "alert.fact_checked"
FACT_CHECK_RETRACTED = "alert.fact_check_retracted"
FACT_CHECK_TYPES = frozenset({FACT_CHECKED, FACT_CHECK_RETRACTED})


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One feed entry: an alert's event (hub_id, cluster_id, revision), a fact-check's event
    (fact_check_id too; hub_id is the alert it was posted on, revision the fact-check's), or a
    node's registration (node: the registered node as JSON text; hub_id and cluster_id empty)."""

    id: str
    type: str
    hub_id: str
    cluster_id: str
    occurred_at: str
    revision: int
    # The entry's place in its feed: 1 for the first event ever appended (feed_append_lua).
    # Not part of the event a subscriber sees; positions and lag are counted with it.
    seq: int = 0
    node: str = ""
    fact_check_id: str = ""
    # Set by FeedReader.retyped for a fact-check event none of whose grounds (the feed's earlier
    # reports of the cluster) its readers may see now: then it is not shown to them.
    withheld: bool = False

    @property
    def is_alert(self) -> bool:
        return self.type != NODE_REGISTERED

    @property
    def is_fact_check(self) -> bool:
        return self.type in FACT_CHECK_TYPES

    @classmethod
    def from_stream(cls, entry_id: bytes, fields: list[bytes]) -> FeedEntry:
        """From a raw XRANGE entry: its id and its flat field/value list."""
        text = {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)}
        return cls(
            id=entry_id.decode(),
            type=text["type"],
            hub_id=text.get("hub_id", ""),
            cluster_id=text.get("cluster_id", ""),
            occurred_at=text.get("occurred_at", ""),
            revision=int(text.get("revision", "1")),
            seq=int(text.get("seq", "0")),
            node=text.get("node", ""),
            fact_check_id=text.get("fact_check_id", ""),
        )

    def as_json(self) -> dict[str, Any]:
        """The entry as a webhook's retry and dead-letter records keep it: for an alert, the
        event's own head; a registration has no hub_id, cluster_id or revision (null)."""
        if not self.is_alert:
            return {
                "id": self.id,
                "type": self.type,
                "hub_id": None,
                "cluster_id": None,
                "occurred_at": self.occurred_at,
                "revision": None,
                "node": orjson.loads(self.node),
            }
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "hub_id": self.hub_id,
            "cluster_id": self.cluster_id,
            "occurred_at": self.occurred_at,
            "revision": self.revision,
        }
        if self.fact_check_id:
            out["fact_check_id"] = self.fact_check_id
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeedEntry:
        node = data.get("node")
        return cls(
            id=data["id"],
            type=data["type"],
            hub_id=data.get("hub_id") or "",
            cluster_id=data.get("cluster_id") or "",
            occurred_at=data["occurred_at"],
            revision=int(data.get("revision") or 0),
            node=orjson.dumps(node).decode() if node is not None else "",
            fact_check_id=data.get("fact_check_id") or "",
        )


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A pull page: the events, the cursor to go on from, and the last entry read (which may be
    one the readers may not see: it counts for the owner's read position, never as a cursor)."""

    events: list[dict[str, Any]]
    next: str | None
    last_read: FeedEntry | None


@dataclass(frozen=True, slots=True)
class Rendered:
    """An event's body as delivered, and the sharing that decides who may get it now (None
    for a registration: whoever reads the feed it was fanned into may have it)."""

    sharing: Sharing | None
    body: bytes
    # The event, when its alert carries claims: its `story_id` and `similar` depend on the
    # readers, and are filled in for each (FeedReader.personal); `body` has them empty.
    event: dict[str, Any] | None = None

    def visible_to(self, readers: tuple[Node, ...]) -> bool:
        return self.sharing is None or all(may_see(self.sharing, r) for r in readers)


def event_json(
    entry: FeedEntry, alert: StoredAlert, fact_check: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The event as every delivery path sends it (API.md): the alert is its stored current form,
    with `story_id` and `similar` empty until filled in for the readers (FeedReader); a
    fact-check's event carries the fact-check (its current form) too."""
    summary = alert.summary_json(utc_now())
    summary.update(story_id=None, similar=[])
    out = {**entry.as_json(), "alert": summary}
    if fact_check is not None:
        out["fact_check"] = fact_check
    return out


def may_have_claims(alert: StoredAlert) -> bool:
    """Whether the alert may carry claim text (so a story and similar reports)."""
    return bool(alert.doc.get("claims") or alert.doc.get("narrative"))


def registration_json(entry: FeedEntry) -> dict[str, Any]:
    """A node.registered event as every delivery path sends it: no hub_id and no alert."""
    return {
        "id": entry.id,
        "type": entry.type,
        "occurred_at": entry.occurred_at,
        "node": orjson.loads(entry.node),
    }


def is_event_id(text: str) -> bool:
    """Whether `text` is an id Redis takes as a stream id: two decimal parts, each of which
    fits in 64 bits (the pattern alone lets 20 digits through, and Redis refuses the rest)."""
    return bool(EVENT_ID.match(text)) and all(int(p) <= MAX_STREAM_ID_PART for p in text.split("-"))

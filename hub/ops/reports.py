"""The regional sharing report: per node, how much it shared, received and corroborated within a
time window, computed from the event log. Pure: the HTTP layer (api_reports.py) reads the log and
the alerts' sharing, this module counts and renders.

Definitions (docs/operations.md, "Sharing report", says the same):

- the window is [since, until): an entry whose stream id's milliseconds equal `since` is in it, one
  whose milliseconds equal `until` is not (it belongs to the window that starts there), so
  back-to-back windows count every entry once;
- a *report* is a `created` or `corroborated` entry of the event log in the window; `updated`
  entries are not new reports and are not counted, and a report's sharing is the one stored now
  (an update may have changed it);
- the report is read by a *viewer*, the calling operator's node, which sees only what the sharing
  policy (hub.policy.may_see) lets it see, like every other read path: the sender decides who may
  see what, and an operator is not a recipient of AMBER or RED unless named. Every figure below
  is built from the reports the viewer may see, and nothing else. The others (and any report
  whose sharing is no longer stored) are only counted, per sender, as `restricted`: volume, not
  broken down by recipient, cluster, corroboration or retraction;
- `shared`: the node's visible reports in the window;
- `received`: visible reports by other nodes in the window that the sharing policy (with the
  sharing stored now) lets the node see, whether or not it subscribed to them: what the hub would
  give it by any read path. A revoked node receives nothing stored after its revocation;
- report B by one node *corroborates* report A by another when B joins A's cluster later, A still
  stands when B is stored, and B's sender may see A: the rule dedup applies (hub.dedup
  `_first_visible`), which answers `created`, not `corroborated`, to a sender that may not see
  the earlier report. B's sender is judged as registered now (an unregistered one by id and the
  country its report carries). A retraction after B does not undo the corroboration;
- `corroborated_by_others`: the node's reports that a report by another node corroborated;
- `median_time_to_corroboration_s`: over those, the median of the seconds from the report to the
  first report by another node that corroborated it; null when there are none;
- `corroborations_given`: the node's reports that corroborated another node's report;
- `retracted`: the node's reports in the window whose retraction is in the window too. A
  retracted report still counts as shared and received: it was shared, and delivered, before;
- `restricted`: the node's reports in the window that the viewer may not see.

Totals: the sums of the node columns (`received` sums each node's), `clusters` (incidents with a
visible report in the window), `corroborated_clusters` (those in which a report was
corroborated), and the region's `median_time_to_corroboration_s`: over corroborated clusters, the
seconds from the first corroborated report to its first corroboration.

Only the window is looked at: a report stored before `since` neither is corroborated nor counts
as corroborated, so a corroboration across the window's start is not seen.
"""

from __future__ import annotations

import csv
import io
import statistics
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hub.ids import stream_id
from hub.nodes import Node
from hub.policy import Sharing, may_see

REPORT_TYPES = frozenset({"created", "corroborated"})
CSV_COLUMNS = (
    "node",
    "country",
    "kind",
    "shared",
    "received",
    "corroborated_by_others",
    "corroborations_given",
    "retracted",
    "restricted",
    "median_time_to_corroboration_s",
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Log positions bounding every real one: before all, and after all (a report never retracted).
NEVER = (-1, -1)
FOREVER = (2**64, 0)


def epoch_ms(moment: datetime) -> int:
    """`moment` in whole milliseconds since the epoch, exactly (no float rounding), as stream
    ids count them; sub-millisecond parts are dropped."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def in_window(position: tuple[int, int], since_ms: int, until_ms: int) -> bool:
    """The window is [since, until): the end is exclusive, so back-to-back windows never share
    an entry."""
    return since_ms <= position[0] < until_ms


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event-log entry; `position` is its stream id as (ms, seq), so it orders and dates it."""

    type: str
    hub_id: str
    cluster_id: str
    sender: str
    position: tuple[int, int]

    @classmethod
    def from_stream(cls, entry_id: str, fields: Mapping[str, str]) -> LogEntry:
        return cls(
            type=fields.get("type", ""),
            hub_id=fields.get("hub_id", ""),
            cluster_id=fields.get("cluster_id", ""),
            sender=fields.get("sender", ""),
            position=stream_id(entry_id),
        )


@dataclass(frozen=True, slots=True)
class NodeFigures:
    node: str
    country: str | None
    kind: str | None
    shared: int
    received: int
    corroborated_by_others: int
    corroborations_given: int
    retracted: int
    restricted: int
    median_time_to_corroboration_s: float | None

    def as_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in CSV_COLUMNS}


@dataclass(frozen=True, slots=True)
class SharingReport:
    since: str
    until: str
    nodes: list[NodeFigures]
    totals: dict[str, object]

    def as_json(self) -> dict[str, object]:
        return {
            "since": self.since,
            "until": self.until,
            "nodes": [n.as_json() for n in self.nodes],
            "totals": self.totals,
        }


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no zone")
    return moment


def _ms(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return epoch_ms(_moment(text))
    except ValueError:
        return None


class _Counter:
    """Walks each cluster's visible reports in log order and keeps the per-node tallies; a
    later report corroborates an earlier one only if its sender (`sender_node`) may see it."""

    def __init__(
        self,
        reports: list[LogEntry],
        retracted_at: dict[str, tuple[int, int]],
        sharing: Mapping[str, Sharing],
        sender_node: Mapping[str, Node],
    ) -> None:
        self.retracted_at = retracted_at
        self.sharing = sharing
        self.sender_node = sender_node
        self.delays: dict[str, list[float]] = defaultdict(list)
        self.corroborated: dict[str, int] = defaultdict(int)
        self.given: dict[str, int] = defaultdict(int)
        self.cluster_delays: list[float] = []
        self.corroborated_clusters = 0
        by_cluster: dict[str, list[LogEntry]] = defaultdict(list)
        for report in reports:
            by_cluster[report.cluster_id].append(report)
        self.clusters = len(by_cluster)
        for members in by_cluster.values():
            self._cluster(members)

    def _cluster(self, members: list[LogEntry]) -> None:
        # Where each sender's reports sit among the members, in order.
        at: dict[str, list[int]] = defaultdict(list)
        for i, report in enumerate(members):
            at[report.sender].append(i)
        # Per sender S, until when the longest-standing earlier report by another sender that S
        # may see stands: S's next report corroborates one iff that is after it.
        best: dict[str, tuple[int, int]] = {}
        first_delay: float | None = None
        for i, report in enumerate(members):
            if best.get(report.sender, NEVER) > report.position:
                self.given[report.sender] += 1
            stands = self.retracted_at.get(report.hub_id, FOREVER)
            stored = self.sharing[report.hub_id]
            readers = [
                sender
                for sender in at
                if sender != report.sender and may_see(stored, self.sender_node[sender])
            ]
            first: int | None = None
            for sender in readers:
                if stands > best.get(sender, NEVER):
                    best[sender] = stands
                later = at[sender]
                k = bisect_right(later, i)
                if k < len(later) and (first is None or later[k] < first):
                    first = later[k]
            # Only the first later report by a reader can be the first corroboration: if the
            # report was retracted before it, it was retracted before every later one.
            if first is None or not stands > members[first].position:
                continue
            delay = (members[first].position[0] - report.position[0]) / 1000
            self.corroborated[report.sender] += 1
            self.delays[report.sender].append(delay)
            if first_delay is None:
                first_delay = delay
        if first_delay is not None:
            self.corroborated_clusters += 1
            self.cluster_delays.append(first_delay)


def _received(node: Node, reports: Iterable[LogEntry], sharing: Mapping[str, Sharing]) -> int:
    revoked_ms = _ms(node.revoked_at)
    count = 0
    for report in reports:
        if report.sender == node.id:
            continue
        if revoked_ms is not None and report.position[0] > revoked_ms:
            continue
        if may_see(sharing[report.hub_id], node):
            count += 1
    return count


def _report_nodes(nodes: Sequence[Node], senders: Iterable[str]) -> list[Node]:
    """Every registered node but operator-only ones, plus any sender no longer registered."""
    listed = {n.id: n for n in nodes if n.kind != "operator"}
    known = {n.id: n for n in nodes}
    for sender in senders:
        if sender not in listed:
            listed[sender] = known.get(sender) or Node(sender, sender, None, "", frozenset())
    return [listed[k] for k in sorted(listed)]


def _sender_nodes(
    nodes: Sequence[Node], reports: Iterable[LogEntry], sharing: Mapping[str, Sharing]
) -> dict[str, Node]:
    """Each sender of `reports` as a Node: as registered, else by id with the country its
    reports carry and no kind (so it is judged as no government node)."""
    known = {n.id: n for n in nodes}
    out: dict[str, Node] = {}
    for report in reports:
        if report.sender not in out:
            country = sharing[report.hub_id].sender_country
            out[report.sender] = known.get(report.sender) or Node(
                report.sender, report.sender, country, "", frozenset()
            )
    return out


def sharing_report(
    entries: Iterable[LogEntry],
    sharing: Mapping[str, Sharing],
    nodes: Sequence[Node],
    since: str,
    until: str,
    *,
    viewer: Node,
) -> SharingReport:
    """The report over `entries` (event-log entries in log order; those outside [since, until)
    are dropped) as `viewer`, the calling operator's node, may see it: `sharing` is the stored
    sharing of each report by hub id (a report missing from it is one the viewer may not see),
    `nodes` the registered nodes, `since` and `until` RFC 3339 times."""
    since_ms, until_ms = epoch_ms(_moment(since)), epoch_ms(_moment(until))
    visible: list[LogEntry] = []
    restricted: dict[str, int] = defaultdict(int)
    retracted_at: dict[str, tuple[int, int]] = {}
    for entry in entries:
        if not in_window(entry.position, since_ms, until_ms):
            continue
        if entry.type in REPORT_TYPES:
            stored = sharing.get(entry.hub_id)
            if stored is not None and may_see(stored, viewer):
                visible.append(entry)
            else:
                restricted[entry.sender] += 1
        elif entry.type == "retracted":
            retracted_at.setdefault(entry.hub_id, entry.position)
    counter = _Counter(visible, retracted_at, sharing, _sender_nodes(nodes, visible, sharing))
    shared: dict[str, int] = defaultdict(int)
    retracted: dict[str, int] = defaultdict(int)
    for report in visible:
        shared[report.sender] += 1
        if report.hub_id in retracted_at:
            retracted[report.sender] += 1
    figures = [
        NodeFigures(
            node=node.id,
            country=node.country or _sender_country(node.id, visible, sharing),
            kind=node.kind or None,
            shared=shared[node.id],
            received=_received(node, visible, sharing),
            corroborated_by_others=counter.corroborated[node.id],
            corroborations_given=counter.given[node.id],
            retracted=retracted[node.id],
            restricted=restricted[node.id],
            median_time_to_corroboration_s=_median(counter.delays[node.id]),
        )
        for node in _report_nodes(nodes, set(shared) | set(restricted))
    ]
    totals: dict[str, object] = {
        "nodes": len(figures),
        "shared": len(visible),
        "received": sum(f.received for f in figures),
        "corroborated_by_others": sum(f.corroborated_by_others for f in figures),
        "corroborations_given": sum(f.corroborations_given for f in figures),
        "retracted": sum(f.retracted for f in figures),
        "restricted": sum(restricted.values()),
        "clusters": counter.clusters,
        "corroborated_clusters": counter.corroborated_clusters,
        "median_time_to_corroboration_s": _median(counter.cluster_delays),
    }
    return SharingReport(since, until, figures, totals)


def _sender_country(
    node_id: str, reports: Iterable[LogEntry], sharing: Mapping[str, Sharing]
) -> str | None:
    for report in reports:
        if report.sender == node_id:
            return sharing[report.hub_id].sender_country
    return None


def render_csv(report: SharingReport) -> str:
    """A header row, then one row per node in the JSON's order; a null median is empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for figures in report.nodes:
        row = figures.as_json()
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()

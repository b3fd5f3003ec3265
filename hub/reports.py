"""The regional sharing report: per node, how much it shared, received and corroborated within a
time window, computed from the event log. Pure: the HTTP layer (api_reports.py) reads the log and
the alerts' sharing, this module counts and renders.

Definitions (README.md, "Sharing report", says the same):

- a *report* is a `created` or `corroborated` entry of the event log in the window; `updated`
  entries are not new reports and are not counted, and a report's sharing is the one stored now
  (an update may have changed it);
- `shared`: the node's reports in the window;
- `received`: reports by other nodes in the window that the sharing policy (hub.policy.may_see,
  with the sharing stored now) lets the node see, whether or not it subscribed to them: what the
  hub would give it by any read path. A revoked node receives nothing stored after its revocation;
- report B by one node *corroborates* report A by another when B joins A's cluster later and A
  still stands when B is stored (the hub's dedup treats a retracted report the same way: it
  corroborates nothing). A retraction after B does not undo the corroboration;
- `corroborated_by_others`: the node's reports that a report by another node corroborated;
- `median_time_to_corroboration_s`: over those, the median of the seconds from the report to the
  first report by another node that corroborated it; null when there are none;
- `corroborations_given`: the node's reports that corroborated another node's report;
- `retracted`: the node's reports in the window whose retraction is in the window too. A
  retracted report still counts as shared and received: it was shared, and delivered, before.

Totals: the sums of the node columns (`received` sums each node's), `clusters` (incidents with a
report in the window), `corroborated_clusters` (those in which a report was corroborated), and the
region's `median_time_to_corroboration_s`: over corroborated clusters, the seconds from the first
corroborated report to its first corroboration.

Only the window is looked at: a report stored before `since` neither is corroborated nor counts
as corroborated, so a corroboration across the window's start is not seen.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

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
    "median_time_to_corroboration_s",
)


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


def _ms(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


class _Counter:
    """Walks each cluster's reports in log order once and keeps the per-node tallies."""

    def __init__(self, reports: list[LogEntry], retracted_at: dict[str, tuple[int, int]]) -> None:
        self.retracted_at = retracted_at
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

    def _stands(self, report: LogEntry, at: tuple[int, int]) -> bool:
        gone = self.retracted_at.get(report.hub_id)
        return gone is None or gone > at

    def _cluster(self, members: list[LogEntry]) -> None:
        # next_other[i]: the first later member by a sender other than members[i]'s; checking
        # only it suffices, since a report retracted before it is retracted before all later.
        next_other: list[int | None] = [None] * len(members)
        for i in range(len(members) - 2, -1, -1):
            same = members[i + 1].sender == members[i].sender
            next_other[i] = next_other[i + 1] if same else i + 1
        # Per sender, until when its earliest-standing report so far stands (None: for good).
        standing: dict[str, tuple[int, int] | None] = {}
        first_delay: float | None = None
        for i, report in enumerate(members):
            if any(
                sender != report.sender and (until is None or until > report.position)
                for sender, until in standing.items()
            ):
                self.given[report.sender] += 1
            until = self.retracted_at.get(report.hub_id)
            if report.sender not in standing or until is None:
                standing[report.sender] = until
            elif standing[report.sender] is not None:
                standing[report.sender] = max(standing[report.sender], until)
            j = next_other[i]
            if j is None or not self._stands(report, members[j].position):
                continue
            delay = (members[j].position[0] - report.position[0]) / 1000
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
        stored = sharing.get(report.hub_id)
        if report.sender == node.id or stored is None:
            continue
        if revoked_ms is not None and report.position[0] > revoked_ms:
            continue
        if may_see(stored, node):
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


def sharing_report(
    entries: Iterable[LogEntry],
    sharing: Mapping[str, Sharing],
    nodes: Sequence[Node],
    since: str,
    until: str,
) -> SharingReport:
    """The report over `entries` (the window's event log, in log order), with `sharing` the
    stored sharing of each report by hub id (a report missing from it counts as shared but as
    received by no one) and `nodes` the registered nodes."""
    reports: list[LogEntry] = []
    retracted_at: dict[str, tuple[int, int]] = {}
    for entry in entries:
        if entry.type in REPORT_TYPES:
            reports.append(entry)
        elif entry.type == "retracted":
            retracted_at.setdefault(entry.hub_id, entry.position)
    counter = _Counter(reports, retracted_at)
    shared: dict[str, int] = defaultdict(int)
    retracted: dict[str, int] = defaultdict(int)
    for report in reports:
        shared[report.sender] += 1
        if report.hub_id in retracted_at:
            retracted[report.sender] += 1
    figures = [
        NodeFigures(
            node=node.id,
            country=node.country or _sender_country(node.id, reports, sharing),
            kind=node.kind or None,
            shared=shared[node.id],
            received=_received(node, reports, sharing),
            corroborated_by_others=counter.corroborated[node.id],
            corroborations_given=counter.given[node.id],
            retracted=retracted[node.id],
            median_time_to_corroboration_s=_median(counter.delays[node.id]),
        )
        for node in _report_nodes(nodes, shared)
    ]
    totals: dict[str, object] = {
        "nodes": len(figures),
        "shared": len(reports),
        "received": sum(f.received for f in figures),
        "corroborated_by_others": sum(f.corroborated_by_others for f in figures),
        "corroborations_given": sum(f.corroborations_given for f in figures),
        "retracted": sum(f.retracted for f in figures),
        "clusters": counter.clusters,
        "corroborated_clusters": counter.corroborated_clusters,
        "median_time_to_corroboration_s": _median(counter.cluster_delays),
    }
    return SharingReport(since, until, figures, totals)


def _sender_country(
    node_id: str, reports: Iterable[LogEntry], sharing: Mapping[str, Sharing]
) -> str | None:
    for report in reports:
        stored = sharing.get(report.hub_id)
        if report.sender == node_id and stored is not None:
            return stored.sender_country
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

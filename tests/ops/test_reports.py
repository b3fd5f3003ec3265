"""The sharing report's pure counting and rendering (hub/reports.py), on hand-built log entries."""

from __future__ import annotations

import csv
import io

from hub.nodes import Node
from hub.ops.reports import CSV_COLUMNS, LogEntry, NodeFigures, render_csv, sharing_report
from hub.policy import Sharing

COUNTRY = {"rs-cert": "RS", "al-cert": "AL", "xk-cert": "XK", "me-cert": "ME", "fc-ba": "BA"}


def node(node_id: str, kind: str = "government", revoked_at: str | None = None) -> Node:
    return Node(
        node_id, node_id, COUNTRY[node_id], kind, frozenset({"publish"}), revoked_at=revoked_at
    )


OPERATOR = Node("operator", "Hub operator", None, "operator", frozenset({"operator"}))
NODES = [
    node("rs-cert"),
    node("al-cert"),
    node("xk-cert"),
    node("me-cert"),
    node("fc-ba", "civil-society"),
    OPERATOR,
]
# A viewer that may see every report of scenario(): a government node (AMBER) that the RED alert
# names. The tests of the counting rules read as it; the bootstrap operator sees less.
SEES_ALL = node("me-cert")
SINCE = "1970-01-01T00:00:00.000Z"
UNTIL = "2100-01-01T00:00:00.000Z"


def entry(kind: str, hub_id: str, cluster: str, sender: str, second: float) -> LogEntry:
    ms = int(second * 1000)
    return LogEntry(kind, hub_id, cluster, sender, (ms, 0))


def sharing(sender: str, tlp: str = "GREEN", **extra: frozenset[str]) -> Sharing:
    return Sharing(
        sender=sender,
        sender_country=COUNTRY.get(sender),
        tlp=tlp,
        recipients=extra.get("recipients", frozenset()),
        withhold_from=extra.get("withhold_from", frozenset()),
    )


def build(
    entries: list[LogEntry],
    shares: dict[str, Sharing],
    nodes: list[Node] = NODES,
    viewer: Node = SEES_ALL,
    since: str = SINCE,
    until: str = UNTIL,
):
    report = sharing_report(entries, shares, nodes, since, until, viewer=viewer)
    return {f.node: f for f in report.nodes}, report


def figures(row: NodeFigures) -> tuple[int, int, int, int, int, int, float | None]:
    """shared, received, corroborated_by_others, corroborations_given, retracted, restricted,
    median_time_to_corroboration_s."""
    return (
        row.shared,
        row.received,
        row.corroborated_by_others,
        row.corroborations_given,
        row.retracted,
        row.restricted,
        row.median_time_to_corroboration_s,
    )


def scenario() -> tuple[list[LogEntry], dict[str, Sharing]]:
    """Cluster c1: rs at 0 s, al at 10 s, xk at 40 s. Cluster c2: rs at 5 s, me at 35 s.
    Cluster c3: al alone. Nobody corroborates fc-ba, which posts nothing."""
    entries = [
        entry("created", "h1", "c1", "rs-cert", 0),
        entry("created", "h2", "c2", "rs-cert", 5),
        entry("corroborated", "h3", "c1", "al-cert", 10),
        entry("updated", "h1", "c1", "rs-cert", 12),
        entry("created", "h4", "c3", "al-cert", 20),
        entry("corroborated", "h5", "c2", "me-cert", 35),
        entry("corroborated", "h6", "c1", "xk-cert", 40),
    ]
    shares = {
        "h1": sharing("rs-cert"),
        "h2": sharing("rs-cert", "AMBER"),
        "h3": sharing("al-cert"),
        "h4": sharing("al-cert", "RED", recipients=frozenset({"me-cert"})),
        "h5": sharing("me-cert", withhold_from=frozenset({"RS"})),
        "h6": sharing("xk-cert"),
    }
    return entries, shares


def test_shared_and_corroboration_counts_and_medians_are_exact() -> None:
    """Shared counts reports only; a report is timed to its first corroboration by another
    (read by a viewer that may see every report)."""
    by_node, report = build(*scenario())
    rs, al, xk, me = (by_node[n] for n in ("rs-cert", "al-cert", "xk-cert", "me-cert"))
    assert (rs.shared, al.shared, xk.shared, me.shared) == (2, 2, 1, 1)
    # rs: h1 first corroborated by al after 10 s, h2 by me after 30 s: median 20 s.
    assert rs.corroborated_by_others == 2
    assert rs.median_time_to_corroboration_s == 20.0
    # al: h3 corroborated by xk after 30 s; h4 alone.
    assert al.corroborated_by_others == 1
    assert al.median_time_to_corroboration_s == 30.0
    assert xk.corroborated_by_others == 0
    assert xk.median_time_to_corroboration_s is None
    assert (rs.corroborations_given, al.corroborations_given) == (0, 1)
    assert (xk.corroborations_given, me.corroborations_given) == (1, 1)
    assert report.totals["shared"] == 6
    assert report.totals["clusters"] == 3
    assert report.totals["corroborated_clusters"] == 2
    # Cluster c1: 10 s; c2: 30 s.
    assert report.totals["median_time_to_corroboration_s"] == 20.0
    assert report.totals["corroborated_by_others"] == 3
    assert report.totals["restricted"] == 0


def test_received_follows_the_sharing_policy() -> None:
    """AMBER skips civil society, RED reaches only named recipients, withholding a country."""
    by_node, report = build(*scenario())
    # Others' reports: GREEN h1 h3 h6, AMBER h2, RED h4 (me only), GREEN h5 withheld from RS.
    assert by_node["rs-cert"].received == 2  # h3, h6 (h5 withheld from RS)
    assert by_node["al-cert"].received == 4  # h1, h2, h5, h6
    assert by_node["xk-cert"].received == 4  # h1, h2, h3, h5
    assert by_node["me-cert"].received == 5  # h1, h2, h3, h4, h6
    assert by_node["fc-ba"].received == 4  # h1, h3, h5, h6: not AMBER h2, not RED h4
    assert report.totals["received"] == 19


def test_a_node_that_only_receives_is_listed_with_zeros() -> None:
    """A node that posted nothing has a row: no reports, no corroborations, what it received."""
    by_node, _ = build(*scenario())
    fc = by_node["fc-ba"]
    assert (fc.shared, fc.corroborated_by_others, fc.corroborations_given, fc.retracted) == (
        0,
        0,
        0,
        0,
    )
    assert fc.median_time_to_corroboration_s is None
    assert fc.kind == "civil-society"


def test_operator_only_nodes_are_left_out() -> None:
    """The operator node has no row; every other node has one, in id order."""
    _, report = build(*scenario())
    assert [f.node for f in report.nodes] == ["al-cert", "fc-ba", "me-cert", "rs-cert", "xk-cert"]


def test_the_operator_sees_red_and_amber_reports_only_as_restricted() -> None:
    """As the bootstrap operator reads scenario(): AMBER h2 and RED h4 appear in no figure (not
    al-cert's or rs-cert's shared, not me-cert's received, not c2's corroboration by h5), only
    as their senders' `restricted`."""
    by_node, report = build(*scenario(), viewer=OPERATOR)
    # Visible: GREEN h1 (rs), h3 (al), h5 (me, withheld from RS), h6 (xk).
    assert figures(by_node["rs-cert"]) == (1, 2, 1, 0, 0, 1, 10.0)  # h1 corroborated by h3
    assert figures(by_node["al-cert"]) == (1, 3, 1, 1, 0, 1, 30.0)  # h3 corroborated by h6
    assert figures(by_node["xk-cert"]) == (1, 3, 0, 1, 0, 0, None)
    assert figures(by_node["me-cert"]) == (1, 3, 0, 0, 0, 0, None)  # h5 alone in c2 as seen
    assert figures(by_node["fc-ba"]) == (0, 4, 0, 0, 0, 0, None)
    assert report.totals == {
        "nodes": 5,
        "shared": 4,
        "received": 15,
        "corroborated_by_others": 2,
        "corroborations_given": 2,
        "retracted": 0,
        "restricted": 2,
        "clusters": 2,
        "corroborated_clusters": 1,
        "median_time_to_corroboration_s": 10.0,
    }


def test_a_red_alert_and_its_corroboration_leave_no_trace_but_restricted() -> None:
    """al-cert's RED alert for me-cert alone, me-cert's GREEN report of the same content, an AMBER
    alert and its AMBER corroboration: the operator sees me-cert's GREEN report as uncorroborating
    and the rest only as one `restricted` number per sender."""
    entries = [
        entry("created", "h1", "c1", "al-cert", 0),
        entry("corroborated", "h2", "c1", "me-cert", 5),
        entry("created", "h3", "c2", "rs-cert", 7),
        entry("corroborated", "h4", "c2", "xk-cert", 9),
        entry("retracted", "h1", "c1", "al-cert", 11),
    ]
    shares = {
        "h1": sharing("al-cert", "RED", recipients=frozenset({"me-cert"})),
        "h2": sharing("me-cert"),
        "h3": sharing("rs-cert", "AMBER"),
        "h4": sharing("xk-cert", "AMBER"),
    }
    by_node, report = build(entries, shares, viewer=OPERATOR)
    assert figures(by_node["al-cert"]) == (0, 1, 0, 0, 0, 1, None)  # received h2
    assert figures(by_node["me-cert"]) == (1, 0, 0, 0, 0, 0, None)  # not h1: not received
    assert figures(by_node["rs-cert"]) == (0, 1, 0, 0, 0, 1, None)
    assert figures(by_node["xk-cert"]) == (0, 1, 0, 0, 0, 1, None)
    assert figures(by_node["fc-ba"]) == (0, 1, 0, 0, 0, 0, None)
    assert report.totals["restricted"] == 3
    assert (report.totals["clusters"], report.totals["corroborated_clusters"]) == (1, 0)
    assert report.totals["median_time_to_corroboration_s"] is None
    # The same log as me-cert (named on the RED, government for the AMBER) sees it all.
    by_node, report = build(entries, shares, viewer=SEES_ALL)
    assert figures(by_node["al-cert"]) == (1, 3, 1, 0, 1, 0, 5.0)  # received h2, h3, h4
    assert figures(by_node["me-cert"]) == (1, 3, 0, 1, 0, 0, None)
    assert report.totals["restricted"] == 0


def test_a_report_whose_sender_may_not_see_the_earlier_one_is_no_corroboration() -> None:
    """As dedup: fc-ba (civil society) may not see rs-cert's AMBER report, so its report of the
    same content was answered `created` and corroborates nothing; xk-cert's later one does, and
    rs-cert's report is timed to it. Nor does a node withheld from corroborate."""
    entries = [
        entry("created", "h1", "c1", "rs-cert", 0),
        entry("corroborated", "h2", "c1", "fc-ba", 3),
        entry("corroborated", "h3", "c1", "xk-cert", 8),
        entry("created", "h4", "c2", "al-cert", 20),
        entry("corroborated", "h5", "c2", "me-cert", 21),
    ]
    shares = {
        "h1": sharing("rs-cert", "AMBER"),
        "h2": sharing("fc-ba"),
        "h3": sharing("xk-cert"),
        "h4": sharing("al-cert", withhold_from=frozenset({"ME"})),
        "h5": sharing("me-cert"),
    }
    by_node, report = build(entries, shares)
    assert by_node["fc-ba"].corroborations_given == 0
    assert by_node["rs-cert"].corroborated_by_others == 1
    assert by_node["rs-cert"].median_time_to_corroboration_s == 8.0  # xk at 8 s, not fc at 3 s
    assert by_node["xk-cert"].corroborations_given == 1
    assert by_node["fc-ba"].corroborated_by_others == 1  # xk-cert may see fc-ba's GREEN h2
    assert by_node["fc-ba"].median_time_to_corroboration_s == 5.0
    assert by_node["me-cert"].corroborations_given == 0  # h4 is withheld from ME
    assert by_node["al-cert"].corroborated_by_others == 0
    assert report.totals["corroborated_clusters"] == 1
    assert report.totals["median_time_to_corroboration_s"] == 8.0


def test_the_window_is_closed_at_since_and_open_at_until() -> None:
    """An entry whose stream id ms equals `until` is in the window that starts there, not the one
    that ends there, so back-to-back windows count it once; one at `since` is in."""
    hour = 3_600_000
    entries = [
        LogEntry("created", "h1", "c1", "rs-cert", (0, 0)),
        LogEntry("created", "h2", "c2", "rs-cert", (hour - 1, 5)),
        LogEntry("created", "h3", "c3", "rs-cert", (hour, 0)),
        LogEntry("retracted", "h2", "c2", "rs-cert", (hour, 1)),
        LogEntry("created", "h4", "c4", "rs-cert", (2 * hour, 0)),
    ]
    shares = {h: sharing("rs-cert") for h in ("h1", "h2", "h3", "h4")}
    first, _ = build(entries, shares, since=SINCE, until="1970-01-01T01:00:00.000Z")
    then, _ = build(
        entries, shares, since="1970-01-01T01:00:00.000Z", until="1970-01-01T02:00:00.000Z"
    )
    assert (first["rs-cert"].shared, first["rs-cert"].retracted) == (2, 0)  # h1, h2
    assert (then["rs-cert"].shared, then["rs-cert"].retracted) == (1, 0)  # h3 only
    assert first["al-cert"].received + then["al-cert"].received == 3


def test_a_report_retracted_before_a_later_one_is_not_corroborated_by_it() -> None:
    """Content reported after its report was retracted corroborates nothing; it stays shared."""
    entries = [
        entry("created", "h1", "c1", "rs-cert", 0),
        entry("retracted", "h1", "c1", "rs-cert", 5),
        entry("corroborated", "h2", "c1", "al-cert", 10),
    ]
    shares = {"h1": sharing("rs-cert"), "h2": sharing("al-cert")}
    by_node, report = build(entries, shares)
    assert by_node["rs-cert"].shared == 1
    assert by_node["rs-cert"].retracted == 1
    assert by_node["rs-cert"].corroborated_by_others == 0
    assert by_node["al-cert"].corroborations_given == 0
    assert by_node["al-cert"].received == 1  # the retracted h1 was delivered before
    assert report.totals["corroborated_clusters"] == 0


def test_a_retraction_after_the_corroboration_does_not_undo_it() -> None:
    """A report corroborated while it stood keeps the corroboration, and counts as retracted."""
    entries = [
        entry("created", "h1", "c1", "rs-cert", 0),
        entry("corroborated", "h2", "c1", "al-cert", 4),
        entry("retracted", "h1", "c1", "rs-cert", 9),
        entry("retracted", "h2", "c1", "al-cert", 9.5),
    ]
    shares = {"h1": sharing("rs-cert"), "h2": sharing("al-cert")}
    by_node, _ = build(entries, shares)
    assert by_node["rs-cert"].corroborated_by_others == 1
    assert by_node["rs-cert"].median_time_to_corroboration_s == 4.0
    assert by_node["rs-cert"].retracted == 1
    assert by_node["al-cert"].corroborations_given == 1
    assert by_node["al-cert"].retracted == 1


def test_a_nodes_own_repeat_is_no_corroboration() -> None:
    """The same node reporting the same content twice is timed to the first other node only."""
    entries = [
        entry("created", "h1", "c1", "rs-cert", 0),
        entry("corroborated", "h2", "c1", "rs-cert", 3),
        entry("corroborated", "h3", "c1", "me-cert", 7),
    ]
    shares = {h: sharing(s) for h, s in (("h1", "rs-cert"), ("h2", "rs-cert"), ("h3", "me-cert"))}
    by_node, report = build(entries, shares)
    rs = by_node["rs-cert"]
    assert (rs.shared, rs.corroborations_given, rs.corroborated_by_others) == (2, 0, 2)
    assert rs.median_time_to_corroboration_s == 5.5  # median of 7 s and 4 s
    assert by_node["me-cert"].corroborations_given == 1
    assert report.totals["median_time_to_corroboration_s"] == 7.0


def test_an_earlier_retracted_report_still_lets_a_standing_one_be_corroborated() -> None:
    """Of two earlier reports by others, one retracted, the standing one makes a corroboration."""
    entries = [
        entry("created", "h1", "c1", "rs-cert", 0),
        entry("corroborated", "h2", "c1", "al-cert", 1),
        entry("retracted", "h1", "c1", "rs-cert", 2),
        entry("corroborated", "h3", "c1", "xk-cert", 3),
    ]
    shares = {h: sharing(s) for h, s in (("h1", "rs-cert"), ("h2", "al-cert"), ("h3", "xk-cert"))}
    by_node, _ = build(entries, shares)
    assert by_node["xk-cert"].corroborations_given == 1
    assert by_node["al-cert"].corroborated_by_others == 1
    assert by_node["al-cert"].median_time_to_corroboration_s == 2.0


def test_a_revoked_node_receives_nothing_stored_after_its_revocation() -> None:
    """Reports stored after a node's revocation do not count as received by it."""
    entries = [
        entry("created", "h1", "c1", "rs-cert", 0),
        entry("created", "h2", "c2", "rs-cert", 100),
    ]
    shares = {"h1": sharing("rs-cert"), "h2": sharing("rs-cert")}
    nodes = [node("rs-cert"), node("al-cert", revoked_at="1970-01-01T00:00:50.000Z")]
    by_node, _ = build(entries, shares, nodes)
    assert by_node["al-cert"].received == 1


def test_a_sender_no_longer_registered_still_has_a_row() -> None:
    """Reports by a node missing from the node list count, under the country they carry."""
    entries = [entry("created", "h1", "c1", "xk-cert", 0)]
    by_node, _ = build(entries, {"h1": sharing("xk-cert")}, [node("rs-cert")])
    assert by_node["xk-cert"].shared == 1
    assert by_node["xk-cert"].country == "XK"
    assert by_node["rs-cert"].received == 1


def test_csv_has_a_header_and_one_row_per_node_matching_the_json() -> None:
    """The CSV's columns are fixed, its rows follow the JSON's nodes, a null median is empty."""
    _, report = build(*scenario())
    text = render_csv(report)
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    as_json = report.as_json()["nodes"]
    assert [r["node"] for r in rows] == [n["node"] for n in as_json]
    for row, figures in zip(rows, as_json, strict=True):
        expected = {k: "" if v is None else str(v) for k, v in figures.items()}
        assert row == expected


def test_log_entries_parse_from_stream_fields() -> None:
    """A stream entry's id becomes its position; its fields its type, report, cluster and sender."""
    parsed = LogEntry.from_stream(
        "1700000000123-4",
        {"type": "created", "hub_id": "H", "cluster_id": "C", "sender": "rs-cert"},
    )
    assert parsed == LogEntry("created", "H", "C", "rs-cert", (1700000000123, 4))

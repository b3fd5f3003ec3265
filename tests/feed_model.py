"""A model of alert sharing for the fault tests: reproducible scenarios of alerts from the
nodes below, and what each subscription should receive worked out from API.md (filters, the TLP
rules, created versus corroborated), never asked of the hub. The event log is read only for the
order (and ids) in which the hub stored the reports."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from hub.store.keys import Keys

KEYS = Keys()

SEVERITIES = ("low", "medium", "high", "critical")
COMMUNITY_TLPS = ("CLEAR", "GREEN")
AMBER_TLPS = ("AMBER", "AMBER+STRICT")
TLPS, TLP_WEIGHTS = ("GREEN", "CLEAR", "AMBER", "AMBER+STRICT", "RED"), (45, 10, 25, 10, 10)
COUNTRIES = ("AL", "BA", "ME", "MK", "RS", "XK")
TAGS = ("election", "phishing", "kfor", "energy", "health")


@dataclass(frozen=True)
class NodeSpec:
    id: str
    country: str
    kind: str = "government"
    roles: tuple[str, ...] = ("publish", "subscribe")
    withhold_from: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        """The POST /v1/nodes body that registers this node."""
        return {
            "id": self.id,
            "name": self.id,
            "country": self.country,
            "kind": self.kind,
            "roles": list(self.roles),
            "defaults": {"withhold_from": list(self.withhold_from)},
        }


NODES = {
    n.id: n
    for n in (
        NodeSpec("al-cert", "AL"),
        NodeSpec("rs-cert", "RS"),
        NodeSpec("ba-cert", "BA", withhold_from=("fc-al",)),
        NodeSpec("me-cert", "ME"),
        NodeSpec("fc-rs", "RS", kind="civil-society", roles=("subscribe",)),
        NodeSpec("fc-al", "AL", kind="civil-society", roles=("subscribe",)),
    )
}
PUBLISHERS = ("al-cert", "rs-cert", "ba-cert", "me-cert")
# Ten pull subscriptions whose filters (and owners' sharing rights) pick different subsets.
SUBSCRIPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("al-cert", {}),
    ("al-cert", {"kinds": ["threat"]}),
    ("rs-cert", {"target_countries": ["AL"]}),
    ("rs-cert", {"min_severity": "high"}),
    ("ba-cert", {"kinds": ["disinformation"], "languages": ["sr"]}),
    ("me-cert", {"source_countries": ["RS", "BA"]}),
    ("me-cert", {"tags_any": ["election"]}),
    ("fc-rs", {}),
    ("fc-rs", {"min_severity": "critical"}),
    ("fc-al", {"target_countries": ["AL", "XK"]}),
)


@dataclass
class Sub:
    owner: str
    filter: dict[str, Any]
    id: str = ""


@dataclass
class Report:
    """One posted alert, the content group (incident) it belongs to, and what the hub answered."""

    sender: str
    body: dict[str, Any]
    group: int
    expected_status: str = "created"
    hub_id: str = ""
    cluster_id: str = ""


@dataclass
class Scenario:
    """The alerts to post, generated reproducibly, with their content groups."""

    rng: random.Random
    reports: list[Report] = field(default_factory=list)
    groups: int = 0

    def batch(self, sender: str, size: int = 50, corroborations: int = 0) -> list[Report]:
        """`size` alerts from `sender`: new content, except `corroborations` that repeat the
        content of earlier reports by other senders."""
        # Each incident is repeated at most once, and only once its first report is stored, so
        # that the order of an incident's reports in the log is known in advance.
        sizes = Counter(r.group for r in self.reports)
        candidates = [
            r for r in self.reports if r.hub_id and r.sender != sender and sizes[r.group] == 1
        ]
        repeated = self.rng.sample(candidates, corroborations)
        out = []
        for i in range(size):
            n = len(self.reports)
            if i < len(repeated):
                original = repeated[i]
                body = self._body(f"{sender}-{n}", original.body["kind"])
                for name in ("indicators", "claims", "urls", "narrative"):
                    if name in original.body:
                        body[name] = original.body[name]
                # The answer is `corroborated` only if the sender may see the earlier report.
                seen = may_receive(original, NODES[sender])
                report = Report(sender, body, original.group, "corroborated" if seen else "created")
            else:
                kind = self.rng.choice(("threat", "disinformation"))
                body = self._body(f"{sender}-{n}", kind)
                body.update(_content(kind, n, body["languages"][0]))
                report = Report(sender, body, self.groups)
                self.groups += 1
            self.reports.append(report)
            out.append(report)
        return out

    def _body(self, alert_id: str, kind: str) -> dict[str, Any]:
        rng = self.rng
        (tlp,) = rng.choices(TLPS, TLP_WEIGHTS)
        share: dict[str, list[str]] = {}
        if tlp in AMBER_TLPS and rng.random() < 0.4:
            share["recipients"] = [rng.choice(("fc-rs", "fc-al"))]
        if tlp == "RED":
            share["recipients"] = rng.sample(("al-cert", "RS", "fc-rs", "BA", "fc-al"), 2)
        if rng.random() < 0.1:
            share["withhold_from"] = [rng.choice(("ME", "fc-rs", "rs-cert", "AL"))]
        body: dict[str, Any] = {
            "id": alert_id,
            "kind": kind,
            "title": f"Report {alert_id}",
            "severity": rng.choice(SEVERITIES),
            "tlp": tlp,
            "target_countries": rng.sample(COUNTRIES, rng.randint(1, 2)),
            "languages": [rng.choice(("sq", "sr-Latn", "sr-Cyrl", "mk", "bs"))],
            "observed_at": "2026-11-21T10:00:00Z",
            "tags": rng.sample(TAGS, rng.randint(0, 2)),
        }
        if share:
            body["share"] = share
        return body


def _content(kind: str, n: int, language: str) -> dict[str, Any]:
    """Content that no other generated alert shares."""
    if kind == "threat":
        return {"indicators": [{"type": "domain", "value": f"lure-{n}.phish.example"}]}
    return {
        "narrative": f"Fabricated story number {n}",
        "claims": [{"text": f"Fabricated claim number {n}", "language": language}],
        "urls": [f"https://news.example/story-{n}"],
    }


def may_receive(report: Report, node: NodeSpec) -> bool:
    """API.md's sharing rules: the sender always; never a node (or country) withheld from;
    CLEAR and GREEN everyone; named recipients (a country names its government nodes); AMBER
    every government node."""
    share = report.body.get("share", {})
    if node.id == report.sender:
        return True
    withheld = {*share.get("withhold_from", ()), *NODES[report.sender].withhold_from}
    if node.id in withheld or node.country in withheld:
        return False
    tlp = report.body["tlp"]
    if tlp in COMMUNITY_TLPS:
        return True
    recipients = share.get("recipients", ())
    if node.id in recipients or (node.kind == "government" and node.country in recipients):
        return True
    return tlp in AMBER_TLPS and node.kind == "government"


def matches(filter_: dict[str, Any], report: Report) -> bool:
    """API.md's filter: every non-empty list must match; min_severity is a floor; languages
    match by BCP 47 prefix."""
    body = report.body
    if filter_.get("kinds") and body["kind"] not in filter_["kinds"]:
        return False
    if filter_.get("target_countries") and not set(body["target_countries"]) & set(
        filter_["target_countries"]
    ):
        return False
    sender_country = NODES[report.sender].country
    if filter_.get("source_countries") and sender_country not in filter_["source_countries"]:
        return False
    floor = filter_.get("min_severity")
    if floor and SEVERITIES.index(body["severity"]) < SEVERITIES.index(floor):
        return False
    if filter_.get("tags_any") and not set(body["tags"]) & set(filter_["tags_any"]):
        return False
    wanted = [w.lower() for w in filter_.get("languages", ())]
    languages = [lang.lower() for lang in body["languages"]]
    return not wanted or any(
        lang == w or lang.startswith(w + "-") for w in wanted for lang in languages
    )


def receives(sub: Sub, report: Report) -> bool:
    return may_receive(report, NODES[sub.owner]) and matches(sub.filter, report)


def expected_feed(sub: Sub, log: list[tuple[str, Report]]) -> list[tuple[str, str, str]]:
    """(event id, type, hub id) of each event the subscription should hold, in log order: the
    first report of an incident it receives is created, any later one corroborated."""
    seen_groups: set[int] = set()
    feed = []
    for event_id, report in log:
        if receives(sub, report):
            kind = "alert.corroborated" if report.group in seen_groups else "alert.created"
            seen_groups.add(report.group)
            feed.append((event_id, kind, report.hub_id))
    return feed


async def read_log(redis: Redis, reports: list[Report]) -> list[tuple[str, Report]]:
    """The event log as (event id, report): one created or corroborated entry per report, the
    type saying whether an earlier report of the same content was logged before it."""
    by_hub_id = {r.hub_id: r for r in reports}
    log = []
    logged_groups: set[int] = set()
    for entry_id, fields in await redis.xrange(KEYS.events):
        if fields[b"type"] == b"node_registered":
            continue  # the nodes' registrations, logged before any subscription was made
        report = by_hub_id[fields[b"hub_id"].decode()]
        expected = "corroborated" if report.group in logged_groups else "created"
        assert fields[b"type"].decode() == expected, (entry_id, fields)
        logged_groups.add(report.group)
        log.append((entry_id.decode(), report))
    assert sorted(r.hub_id for _, r in log) == sorted(by_hub_id)
    return log


def check_clusters(reports: list[Report]) -> None:
    """One hub cluster per content group, and no two groups in one cluster."""
    clusters: dict[int, set[str]] = {}
    for report in reports:
        clusters.setdefault(report.group, set()).add(report.cluster_id)
    assert all(len(ids) == 1 for ids in clusters.values())
    assert len({next(iter(ids)) for ids in clusters.values()}) == len(clusters)


def first_difference(got: list, expected: list) -> str:
    for i, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return f"at {i}: got {a}, expected {b}"
    return f"lengths {len(got)} and {len(expected)}"


def expected_counts(subs: list[Sub], reports: list[Report]) -> list[int]:
    return [sum(receives(sub, r) for r in reports) for sub in subs]

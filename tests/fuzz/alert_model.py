"""A small in-memory model of what API.md and DESIGN.md promise about posting, updating,
retracting and corroborating alerts, and about what each pull subscription's feed then holds.
Pure: no I/O. tests/fuzz/test_alert_state_machine.py runs the real hub beside it.

The model is written from the contract, not from the hub's code:
- the sharing policy (DESIGN.md "Sharing policy"): the sender always; never a withheld node or
  country (the alert's own `withhold_from` joined by the sender's standing defaults); CLEAR and
  GREEN to every node; a named recipient (a node id, or a country for its government nodes);
  AMBER to government nodes; RED to named recipients only;
- dedup (API.md "Alerts", DESIGN.md "non-interference"): one content (fingerprint) is one
  cluster, whoever reported it; a report carries its content from when it was posted or updated
  to it until it is retracted or updated to other content, and joins (or moves to) the cluster of
  the content it carries. A new report answers `corroborated` with the earliest report carrying
  its content that its sender may see, or `created` when there is none: reports the sender may
  not see change nothing in its answer. Same id and revision is `unchanged` (or 409 with other
  content), a higher one `updated`, a lower one 409, and a retracted alert takes no update (409);
- feeds (API.md "Subscriptions and delivery"): a subscription gets the events logged after it was
  made; the first report of a cluster that its owner may see and its filter matches arrives as
  `alert.created`, later ones as `alert.corroborated`; an update reaches it as `alert.updated`
  when it got the report (and gives it the cluster of the report's new content), or as new when
  the update makes the report match; a retraction reaches exactly those that got the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("low", "medium", "high", "critical")
COMMUNITY = frozenset({"CLEAR", "GREEN"})
AMBER = frozenset({"AMBER", "AMBER+STRICT"})


@dataclass(frozen=True)
class Node:
    id: str
    country: str
    kind: str  # government | civil-society
    withhold_from: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Content:
    """What dedup looks at. Reports with the same `fingerprint` are one incident; reports that
    share a `links` key but not the fingerprint are related. `script` (the Serbian claim
    written in Cyrillic or Latin) changes neither."""

    kind: str  # threat | disinformation
    campaign: int
    variant: int
    script: str = "Latn"

    @property
    def fingerprint(self) -> tuple[str, int, int]:
        return (self.kind, self.campaign, self.variant)

    @property
    def links(self) -> frozenset[tuple[str, int]]:
        # Every variant of a campaign shares its domain (threat) or its claim (disinformation).
        return frozenset({(self.kind, self.campaign)})


@dataclass
class Alert:
    hub_id: str
    alert_id: str
    sender: Node
    content: Content
    tlp: str
    recipients: frozenset[str]
    withhold_from: frozenset[str]  # the alert's own, before the sender's defaults
    cluster_id: str
    revision: int
    title: str
    severity: str
    titles: dict[int, tuple[str, str]] = field(default_factory=dict)  # revision -> title, severity
    status: str = "active"

    @property
    def withheld(self) -> frozenset[str]:
        return self.withhold_from | self.sender.withhold_from


@dataclass(frozen=True)
class Filter:
    kinds: frozenset[str] = frozenset()
    min_severity: str | None = None
    source_countries: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()  # BCP 47 prefixes: "sr" takes sr-Cyrl and sr-Latn

    def matches(self, alert: Alert) -> bool:
        if self.kinds and alert.content.kind not in self.kinds:
            return False
        if self.min_severity and SEVERITIES.index(alert.severity) < SEVERITIES.index(
            self.min_severity
        ):
            return False
        if self.source_countries and alert.sender.country not in self.source_countries:
            return False
        if self.languages:
            have = {language(alert.content).lower()}
            wanted = {w.lower() for w in self.languages}
            return any(h == w or h.startswith(w + "-") for h in have for w in wanted)
        return True


def language(content: Content) -> str:
    return f"sr-{content.script}" if content.kind == "disinformation" else "sq"


@dataclass(frozen=True)
class FeedEvent:
    type: str
    hub_id: str
    cluster_id: str
    revision: int


@dataclass
class Subscription:
    id: str
    owner: Node
    filter: Filter
    start: int  # the number of log events before it was made
    feed: list[FeedEvent] = field(default_factory=list)
    received: set[str] = field(default_factory=set)  # hub ids of reports it got
    clusters: set[str] = field(default_factory=set)  # incidents it has


@dataclass(frozen=True)
class Expected:
    """The answer to a POST /v1/alerts, as the model predicts it. `cluster_id` is None for a
    cluster the hub has not made yet; `duplicate_of` only for corroborated."""

    http: int
    status: str | None  # created | corroborated | unchanged | updated; None for an error
    cluster_id: str | None = None
    duplicate_of: str | None = None
    hub_id: str | None = None


def may_see(alert: Alert, node: Node) -> bool:
    if node.id == alert.sender.id:
        return True
    if node.id in alert.withheld or node.country in alert.withheld:
        return False
    if alert.tlp in COMMUNITY:
        return True
    if node.id in alert.recipients or (
        node.kind == "government" and node.country in alert.recipients
    ):
        return True
    return alert.tlp in AMBER and node.kind == "government"


@dataclass
class Model:
    nodes: dict[str, Node] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)  # by hub id, in the order stored
    by_sender_id: dict[tuple[str, str], str] = field(default_factory=dict)
    cluster_of: dict[tuple[str, int, int], str] = field(default_factory=dict)  # fingerprint
    members: dict[str, list[str]] = field(default_factory=dict)  # cluster -> hub ids in order
    # fingerprint -> the live reports carrying it, in the order they took it
    carriers: dict[tuple[str, int, int], list[str]] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    body_keys: dict[str, tuple] = field(default_factory=dict)  # hub id -> its latest body
    logged: int = 0  # events in the hub's log

    # -- posting -------------------------------------------------------------------------
    def expect_post(self, sender: Node, alert_id: str, revision: int, body_key: tuple) -> Expected:
        """What the hub must answer to `sender` posting `alert_id` at `revision`; `body_key`
        stands for the whole body (same key, same bytes)."""
        existing = self.by_sender_id.get((sender.id, alert_id))
        if existing is not None:
            alert = self.alerts[existing]
            if revision == alert.revision:
                same = body_key == self.body_keys[existing]
                return Expected(200, "unchanged", hub_id=existing) if same else Expected(409, None)
            if revision < alert.revision or alert.status == "retracted":
                return Expected(409, None)
            return Expected(200, "updated", hub_id=existing)
        return self._expect_new(sender, body_key)

    def _expect_new(self, sender: Node, body_key: tuple) -> Expected:
        content: Content = body_key[0]
        cluster = self.cluster_of.get(content.fingerprint)
        for hub_id in self.carriers.get(content.fingerprint, []):
            if may_see(self.alerts[hub_id], sender):
                return Expected(201, "corroborated", cluster, duplicate_of=hub_id)
        return Expected(201, "created", cluster)

    def cluster_known(self, content: Content) -> bool:
        return content.fingerprint in self.cluster_of

    def stored(self, alert: Alert, body_key: tuple) -> None:
        """A new report the hub stored (its hub id and cluster as the hub answered)."""
        alert.titles[alert.revision] = (alert.title, alert.severity)
        self.alerts[alert.hub_id] = alert
        self.body_keys[alert.hub_id] = body_key
        self.by_sender_id[(alert.sender.id, alert.alert_id)] = alert.hub_id
        assert self.cluster_of.setdefault(alert.content.fingerprint, alert.cluster_id) == (
            alert.cluster_id
        ), "one content, one cluster"
        self.members.setdefault(alert.cluster_id, []).append(alert.hub_id)
        self.carriers.setdefault(alert.content.fingerprint, []).append(alert.hub_id)
        self._log("created", alert)

    def updated(
        self,
        hub_id: str,
        revision: int,
        title: str,
        severity: str,
        key: tuple,
        new_cluster: str | None = None,
    ) -> None:
        """A higher revision stored. New content moves the report to that content's cluster
        (`new_cluster`, as the hub named it, when the model has not met the content yet), and
        the report carries the new content from now on."""
        alert = self.alerts[hub_id]
        alert.revision, alert.title, alert.severity = revision, title, severity
        old, alert.content = alert.content, key[0]
        if old.fingerprint != alert.content.fingerprint:
            self.carriers[old.fingerprint].remove(hub_id)
            self.carriers.setdefault(alert.content.fingerprint, []).append(hub_id)
            cluster = self.cluster_of.setdefault(alert.content.fingerprint, new_cluster or "")
            assert cluster, "the content's cluster must be known or named"
            if cluster != alert.cluster_id:
                self.members[alert.cluster_id].remove(hub_id)
                self.members.setdefault(cluster, []).append(hub_id)
                alert.cluster_id = cluster
        alert.titles[revision] = (title, severity)
        self.body_keys[hub_id] = key
        self._log("updated", alert)

    def retracted(self, hub_id: str) -> bool:
        """Retract; False when it was retracted already (no new event)."""
        alert = self.alerts[hub_id]
        if alert.status == "retracted":
            return False
        alert.status = "retracted"
        self.carriers[alert.content.fingerprint].remove(hub_id)
        self._log("retracted", alert)
        return True

    # -- reading ---------------------------------------------------------------------------
    def visible(self, node: Node) -> list[Alert]:
        """What a listing shows `node`: newest first (hub ids sort by time)."""
        return sorted(
            (a for a in self.alerts.values() if may_see(a, node)),
            key=lambda a: a.hub_id,
            reverse=True,
        )

    def reporters(self, alert: Alert, node: Node) -> list[str]:
        return [h for h in self.members[alert.cluster_id] if may_see(self.alerts[h], node)]

    def related(self, alert: Alert, node: Node) -> list[str]:
        return sorted(
            other.hub_id
            for other in self.alerts.values()
            if other.cluster_id != alert.cluster_id
            and other.content.links & alert.content.links
            and may_see(other, node)
        )

    # -- feeds -----------------------------------------------------------------------------
    def subscribe(self, sub_id: str, owner: Node, filter_: Filter) -> Subscription:
        sub = Subscription(sub_id, owner, filter_, start=self.logged)
        self.subscriptions[sub_id] = sub
        return sub

    def _log(self, kind: str, alert: Alert) -> None:
        self.logged += 1
        for sub in self.subscriptions.values():
            event = self._fan(kind, alert, sub)
            if event is not None:
                sub.feed.append(event)

    def _fan(self, kind: str, alert: Alert, sub: Subscription) -> FeedEvent | None:
        """What one log event adds to one feed, judged on the alert as it stands right after
        the event (the test lets fan-out finish after every step)."""
        got = alert.hub_id in sub.received
        if kind == "retracted":
            return self._event("alert.retracted", alert) if got else None
        if not may_see(alert, sub.owner):
            return None
        if kind == "updated" and got:
            sub.clusters.add(alert.cluster_id)
            return self._event("alert.updated", alert)
        if not sub.filter.matches(alert):
            return None
        known = alert.cluster_id in sub.clusters
        sub.clusters.add(alert.cluster_id)
        sub.received.add(alert.hub_id)
        return self._event("alert.corroborated" if known else "alert.created", alert)

    @staticmethod
    def _event(kind: str, alert: Alert) -> FeedEvent:
        return FeedEvent(kind, alert.hub_id, alert.cluster_id, alert.revision)

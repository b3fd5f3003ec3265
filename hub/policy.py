"""The sharing policy: may this node see this alert? Pure; one function guards every read path.

A node registered after an alert was stored sees it only when the alert is shared with the whole
community (CLEAR, GREEN) or names the node by its id: a sender that named a country, or shared
AMBER with every government node, chose among the nodes that existed then, and registering a node
must not be a way to read what was shared before it existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.nodes import Node

COMMUNITY_TLPS = frozenset({"CLEAR", "GREEN"})
AMBER_TLPS = frozenset({"AMBER", "AMBER+STRICT"})
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True, slots=True)
class Sharing:
    """What the policy needs of an alert, fixed when the alert is stored. `withhold_from` already
    holds the sender's standing defaults merged with the alert's own `share.withhold_from`."""

    sender: str
    sender_country: str | None
    tlp: str
    recipients: frozenset[str]
    withhold_from: frozenset[str]
    # The alert's hub id (a ULID: its time is when the alert was first stored); None where the
    # policy is asked about an alert not yet stored, which no node can have been registered after.
    stored_as: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "sender": self.sender,
            "sender_country": self.sender_country,
            "tlp": self.tlp,
            "recipients": sorted(self.recipients),
            "withhold_from": sorted(self.withhold_from),
        }

    @classmethod
    def from_json(cls, data: dict, stored_as: str | None = None) -> Sharing:
        """From the stored `meta` of the alert whose hub id is `stored_as`."""
        return cls(
            sender=data["sender"],
            sender_country=data.get("sender_country"),
            tlp=data["tlp"],
            recipients=frozenset(data.get("recipients", ())),
            withhold_from=frozenset(data.get("withhold_from", ())),
            stored_as=stored_as,
        )

    def audiences(self) -> list[str]:
        """The listing indexes (keys.py, Keys.audience) the alert is filed under: every node
        that may see it reads at least one of them (reader_audiences), so a listing scans those
        instead of every alert. Withholding is not indexed: readers check each alert they read."""
        found = {f"id:{self.sender}"}
        if self.tlp in COMMUNITY_TLPS:
            found.add("all")
        else:
            if self.tlp in AMBER_TLPS:
                found.add("gov")
            for recipient in self.recipients:
                found.add(f"cc:{recipient}" if _COUNTRY.match(recipient) else f"id:{recipient}")
        return sorted(found)


@dataclass(frozen=True, slots=True)
class Decision:
    deliver: bool
    reason: str


def _names(sharing_set: frozenset[str], node: Node) -> bool:
    return node.id in sharing_set or (node.country is not None and node.country in sharing_set)


def registered_after(sharing: Sharing, node: Node) -> bool:
    """Whether `node` was registered after the alert was stored (the module docstring)."""
    return (
        bool(node.since_id)
        and sharing.stored_as is not None
        and (sharing.stored_as < node.since_id)
    )


def reader_audiences(node: Node) -> tuple[list[str], list[str]]:
    """The listing indexes `node` reads: those it reads whole, and those (a country's, the
    governments') from which it may see only alerts stored since it was registered."""
    whole = ["all", f"id:{node.id}"]
    since: list[str] = []
    if node.kind == "government":
        since = ["gov", f"cc:{node.country}"] if node.country else ["gov"]
    return whole, since


def decide(sharing: Sharing, node: Node) -> Decision:
    """Deliver or withhold `sharing`'s alert to `node`, with the reason in words."""
    if node.id == sharing.sender:
        return Decision(True, "the node is the sender")
    if _names(sharing.withhold_from, node):
        which = node.id if node.id in sharing.withhold_from else node.country
        return Decision(False, f"the sender withholds this alert from {which}")
    if sharing.tlp in COMMUNITY_TLPS:
        return Decision(True, f"TLP:{sharing.tlp} is shared with every registered node")
    if node.id in sharing.recipients:
        return Decision(True, f"the sender names {node.id} as a recipient")
    # A country names that country's government nodes only, so that naming "RS" never pulls in a
    # Serbian civil-society partner the sender did not name.
    by_country = node.kind == "government" and node.country in sharing.recipients
    by_amber = node.kind == "government" and sharing.tlp in AMBER_TLPS
    if (by_country or by_amber) and registered_after(sharing, node):
        return Decision(
            False,
            f"{node.id} was registered after this alert was shared; only a sender that names "
            "it by its id shares an earlier AMBER or RED alert with it",
        )
    if by_country:
        return Decision(True, f"the sender names {node.country} as a recipient")
    if sharing.tlp in AMBER_TLPS:
        if by_amber:
            return Decision(True, f"TLP:{sharing.tlp} is shared with government nodes")
        return Decision(
            False, f"TLP:{sharing.tlp} reaches a {node.kind} node only when the sender names it"
        )
    return Decision(False, f"TLP:{sharing.tlp} reaches only the recipients the sender names")


def may_see(sharing: Sharing, node: Node) -> bool:
    return decide(sharing, node).deliver

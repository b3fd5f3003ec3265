"""The sharing policy: may this node see this alert? Pure; one function guards every read path."""

from __future__ import annotations

from dataclasses import dataclass

from hub.nodes import Node

COMMUNITY_TLPS = frozenset({"CLEAR", "GREEN"})
AMBER_TLPS = frozenset({"AMBER", "AMBER+STRICT"})


@dataclass(frozen=True, slots=True)
class Sharing:
    """What the policy needs of an alert, fixed when the alert is stored. `withhold_from` already
    holds the sender's standing defaults merged with the alert's own `share.withhold_from`."""

    sender: str
    sender_country: str | None
    tlp: str
    recipients: frozenset[str]
    withhold_from: frozenset[str]

    def as_json(self) -> dict[str, object]:
        return {
            "sender": self.sender,
            "sender_country": self.sender_country,
            "tlp": self.tlp,
            "recipients": sorted(self.recipients),
            "withhold_from": sorted(self.withhold_from),
        }

    @classmethod
    def from_json(cls, data: dict) -> Sharing:
        return cls(
            sender=data["sender"],
            sender_country=data.get("sender_country"),
            tlp=data["tlp"],
            recipients=frozenset(data.get("recipients", ())),
            withhold_from=frozenset(data.get("withhold_from", ())),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    deliver: bool
    reason: str


def _names(sharing_set: frozenset[str], node: Node) -> bool:
    return node.id in sharing_set or (node.country is not None and node.country in sharing_set)


def _named_recipient(sharing: Sharing, node: Node) -> bool:
    """A node is named by its id; a country names that country's government nodes only, so that
    naming "RS" never pulls in a Serbian civil-society partner the sender did not name."""
    if node.id in sharing.recipients:
        return True
    return node.kind == "government" and node.country in sharing.recipients


def decide(sharing: Sharing, node: Node) -> Decision:
    """Deliver or withhold `sharing`'s alert to `node`, with the reason in words."""
    if node.id == sharing.sender:
        return Decision(True, "the node is the sender")
    if _names(sharing.withhold_from, node):
        which = node.id if node.id in sharing.withhold_from else node.country
        return Decision(False, f"the sender withholds this alert from {which}")
    if sharing.tlp in COMMUNITY_TLPS:
        return Decision(True, f"TLP:{sharing.tlp} is shared with every registered node")
    if _named_recipient(sharing, node):
        return Decision(True, f"the sender names {node.id} as a recipient")
    if sharing.tlp in AMBER_TLPS:
        if node.kind == "government":
            return Decision(True, f"TLP:{sharing.tlp} is shared with government nodes")
        return Decision(
            False, f"TLP:{sharing.tlp} reaches a {node.kind} node only when the sender names it"
        )
    return Decision(False, f"TLP:{sharing.tlp} reaches only the recipients the sender names")


def may_see(sharing: Sharing, node: Node) -> bool:
    return decide(sharing, node).deliver

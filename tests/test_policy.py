"""The sharing policy, table-driven over TLP x node kind x named / withheld."""

from __future__ import annotations

import pytest

from hub.nodes import Node
from hub.policy import Sharing, decide

SENDER = "rs-cert"
GOV = Node("al-cert", "AL CERT", "AL", "government", frozenset({"subscribe"}))
CIVIL = Node("factcheck-ba", "FC BA", "BA", "civil-society", frozenset({"subscribe"}))
CIVIL_RS = Node("factcheck-rs", "FC RS", "RS", "civil-society", frozenset({"subscribe"}))
GOV_RS = Node("rs-mod", "RS MoD", "RS", "government", frozenset({"subscribe"}))
OPERATOR = Node("operator", "Op", None, "operator", frozenset({"operator"}))


def sharing(tlp: str, recipients: tuple[str, ...] = (), withhold: tuple[str, ...] = ()) -> Sharing:
    return Sharing(SENDER, "RS", tlp, frozenset(recipients), frozenset(withhold))


TLPS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
# (tlp, node, named by id, withheld by id) -> expected
CASES = []
for tlp in TLPS:
    for node in (GOV, CIVIL, OPERATOR):
        for named in (False, True):
            for withheld in (False, True):
                if withheld:
                    expected = False
                elif tlp in ("CLEAR", "GREEN") or named:
                    expected = True
                elif tlp in ("AMBER", "AMBER+STRICT"):
                    expected = node.kind == "government"
                else:
                    expected = False
                CASES.append((tlp, node, named, withheld, expected))


@pytest.mark.parametrize(("tlp", "node", "named", "withheld", "expected"), CASES)
def test_tlp_kind_named_withheld(
    tlp: str, node: Node, named: bool, withheld: bool, expected: bool
) -> None:
    """Every TLP x node kind x named x withheld combination gets the DESIGN.md answer."""
    s = sharing(tlp, (node.id,) if named else (), (node.id,) if withheld else ())
    decision = decide(s, node)
    assert decision.deliver is expected, decision.reason
    assert decision.reason


@pytest.mark.parametrize("tlp", TLPS)
def test_withheld_country_wins_over_everything(tlp: str) -> None:
    """Withholding a country withholds every node of it, even one named as a recipient."""
    s = sharing(tlp, recipients=(GOV_RS.id, CIVIL_RS.id), withhold=("RS",))
    assert not decide(s, GOV_RS).deliver
    assert not decide(s, CIVIL_RS).deliver
    assert decide(s, GOV).deliver is (tlp != "RED")


def test_country_recipient_names_government_nodes_only() -> None:
    """Naming a country as a RED recipient reaches its government nodes, not its civil society."""
    s = sharing("RED", recipients=("RS",))
    assert decide(s, GOV_RS).deliver
    assert not decide(s, CIVIL_RS).deliver
    assert not decide(s, GOV).deliver


@pytest.mark.parametrize("tlp", TLPS)
def test_sender_always_sees_its_own_alert(tlp: str) -> None:
    """A sender sees its own alert whatever it withholds."""
    sender = Node(SENDER, "RS CERT", "RS", "government", frozenset({"publish"}))
    assert decide(sharing(tlp, withhold=("RS",)), sender).deliver


def test_reason_names_the_withheld_party() -> None:
    """The reason for withholding says from whom, so an operator can explain it."""
    assert "RS" in decide(sharing("GREEN", withhold=("RS",)), GOV_RS).reason

"""The sharing policy, table-driven over TLP x node kind x named / withheld."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.nodes import Node
from hub.policy import Sharing, decide, may_see, reader_audiences

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


LATE_GOV = Node(
    "me-late",
    "ME late",
    "ME",
    "government",
    frozenset({"subscribe"}),
    since_id="01M95C0000" + "0" * 16,
)
EARLY_ALERT = "01M95B0000" + "0" * 16  # stored before LATE_GOV was registered
LATE_ALERT = "01M95D0000" + "0" * 16  # stored after


@pytest.mark.parametrize(
    ("tlp", "recipients", "stored_as", "expected"),
    [
        ("AMBER", (), EARLY_ALERT, False),
        ("AMBER", (), LATE_ALERT, True),
        ("AMBER+STRICT", (), EARLY_ALERT, False),
        ("RED", ("ME",), EARLY_ALERT, False),
        ("RED", ("ME",), LATE_ALERT, True),
        ("RED", ("me-late",), EARLY_ALERT, True),
        ("AMBER", ("me-late",), EARLY_ALERT, True),
        ("GREEN", (), EARLY_ALERT, True),
        ("CLEAR", (), EARLY_ALERT, True),
    ],
)
def test_a_node_registered_later_sees_earlier_alerts_only_when_named_by_id(
    tlp: str, recipients: tuple[str, ...], stored_as: str, expected: bool
) -> None:
    """A node registered after an alert was stored does not get it through its country or as
    a government node (AMBER): only CLEAR, GREEN, or a sender naming it by id shares it."""
    s = Sharing(SENDER, "RS", tlp, frozenset(recipients), frozenset(), stored_as=stored_as)
    decision = decide(s, LATE_GOV)
    assert decision.deliver is expected, decision.reason
    if not expected:
        assert "registered after" in decision.reason


node_ids = st.sampled_from(["al-cert", "rs-mod", "factcheck-ba", "factcheck-rs", "operator"])
countries = st.sampled_from(["AL", "RS", "BA", "ME"])
hub_ids = st.sampled_from([EARLY_ALERT, LATE_ALERT, None])
nodes = st.builds(
    Node,
    id=node_ids,
    name=st.just("n"),
    country=st.one_of(st.none(), countries),
    kind=st.sampled_from(["government", "civil-society", "operator"]),
    roles=st.just(frozenset({"subscribe"})),
    since_id=st.sampled_from(["", LATE_GOV.since_id]),
)
sharings = st.builds(
    Sharing,
    sender=st.sampled_from(["rs-cert", "al-cert", "factcheck-rs"]),
    sender_country=countries,
    tlp=st.sampled_from(TLPS),
    recipients=st.frozensets(st.one_of(node_ids, countries), max_size=3),
    withhold_from=st.frozensets(st.one_of(node_ids, countries), max_size=2),
    stored_as=hub_ids,
)


@given(sharing=sharings, node=nodes)
def test_every_visible_alert_is_filed_where_its_reader_looks(sharing: Sharing, node: Node) -> None:
    """The listing indexes are complete: an alert a node may see is filed under an index the
    node reads whole, or under one it reads from its registration on and stored since then."""
    filed = set(sharing.audiences())
    whole, since = reader_audiences(node)
    found = bool(filed & set(whole)) or (
        bool(filed & set(since))
        and (sharing.stored_as is None or sharing.stored_as >= node.since_id)
    )
    if may_see(sharing, node):
        assert found, (sharing, node)

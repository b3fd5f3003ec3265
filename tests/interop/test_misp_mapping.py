"""The MISP mapping (hub/interop/misp.py and misp_import.py), checked with PyMISP itself: every
example alert's event loads in PyMISP's MISPEvent with types and categories MISP knows, its
manifest entry and hash lines are what PyMISP's own feed generator writes, and importing the
event gives back the alert; the refusals of the import point into the MISP JSON."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymisp import MISPEvent
from pymisp.abstract import describe_types

from hub.errors import ValidationFailed
from hub.ids import new_ulid
from hub.ingest.validation import SchemaSet
from hub.interop.galaxies import galaxy_tag
from hub.interop.misp import (
    FeedAlert,
    event_of,
    event_timestamp,
    hash_lines,
    hashes_of,
    manifest_entry,
    manifest_of,
    ulid_to_uuid,
    uuid_to_ulid,
)
from hub.interop.misp_import import alert_of, events_of

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "alert" / "valid"
ALERTS = {p.name: json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))}
# Fields the round trip does not carry: the revision becomes the MISP timestamp, the sender is
# the importing node's token, and "critical" is carried by a tag that a foreign MISP may not keep.
NOT_CARRIED = ("revision", "sender", "source_country")


def feed_alert(doc: dict[str, Any], status: str = "active", hub_id: str | None = None) -> FeedAlert:
    return FeedAlert(
        hub_id=hub_id or new_ulid(),
        doc=doc,
        sender="al-cert",
        status=status,
        received_at="2026-11-21T10:00:00Z",
        changed_at="2026-11-21T11:30:00Z",
    )


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k not in NOT_CARRIED and v not in ("", [])}
    share = {k: v for k, v in (out.pop("share", None) or {}).items() if v}
    if share:
        out["share"] = share
    for key in ("tags", "target_countries", "languages", "sectors", "platforms"):
        if not out.get(key):
            out.pop(key, None)
    return out


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_example_loads_in_pymisp_with_types_misp_knows(name: str) -> None:
    """PyMISP loads the event; every attribute's type and category pair is one MISP accepts."""
    event = event_of(feed_alert(ALERTS[name]))
    misp = MISPEvent()
    misp.load(copy.deepcopy(event))
    assert misp.uuid == event["Event"]["uuid"]
    assert misp.info == ALERTS[name]["title"]
    categories = describe_types["category_type_mappings"]
    for attribute in misp.attributes:
        assert attribute.type in describe_types["types"], attribute.type
        assert attribute.type in categories[attribute.category], (
            attribute.type,
            attribute.category,
        )
    tlp = [t.name for t in misp.tags if t.name.startswith("tlp:")]
    assert tlp == [f"tlp:{ALERTS[name]['tlp'].lower()}"]


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_manifest_and_hashes_are_what_pymisp_generates(name: str) -> None:
    """manifest_entry and hash_lines agree with PyMISP's feed generator (tools/feed.py)."""
    event = event_of(feed_alert(ALERTS[name]))
    misp = MISPEvent()
    misp.load(copy.deepcopy(event))
    theirs = misp.manifest[event["Event"]["uuid"]]
    ours = manifest_entry(event)
    assert {k: str(v) for k, v in theirs.items() if k not in ("Tag", "Orgc")} == {
        k: str(v) for k, v in ours.items() if k not in ("Tag", "Orgc")
    }
    assert [t["name"] for t in theirs["Tag"]] == [t["name"] for t in ours["Tag"]]
    assert theirs["Orgc"] == ours["Orgc"]
    uuid_ = event["Event"]["uuid"]
    assert hash_lines(event) == [f"{h},{uuid_}" for h in misp.attributes_hashes("md5")]
    for status in ("active", "retracted"):  # the feed's shortcuts make the same
        alert = feed_alert(ALERTS[name], status=status)
        full = event_of(alert)
        assert manifest_of(alert) == (full["Event"]["uuid"], manifest_entry(full))
        assert hashes_of(alert) == hash_lines(full)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_round_trip_gives_back_the_alert(name: str, schema_set: SchemaSet) -> None:
    """Importing an exported event gives the alert again (but what NOT_CARRIED names), with
    the event's uuid as its id and its timestamp as its revision; the result is a valid alert."""
    doc = ALERTS[name]
    event = event_of(feed_alert(doc))
    [(base, body)] = events_of(event)
    converted = alert_of(body, base)
    assert converted.skipped == []
    back = converted.alert
    assert back["id"] == event["Event"]["uuid"]
    assert back["revision"] == int(event["Event"]["timestamp"])
    assert comparable({**back, "id": doc["id"]}) == comparable(doc)
    assert schema_set.problems("alert", back) == []


def test_pymisp_round_trip_through_its_own_json() -> None:
    """An event PyMISP has loaded and written again (to_json) still imports to the alert."""
    doc = ALERTS["api-disinformation-sr-cyrl.json"]
    misp = MISPEvent()
    misp.load(copy.deepcopy(event_of(feed_alert(doc))))
    written = json.loads(misp.to_json())
    [(base, body)] = events_of(written)
    assert comparable({**alert_of(body, base).alert, "id": doc["id"]}) == comparable(doc)


def test_galaxy_tags_are_spelled_as_misp_clusters_are() -> None:
    """ATT&CK and DISARM techniques become the tags MISP links to its galaxy clusters, and
    such tags from a MISP event (DISARM's name no id) come back as the techniques."""
    doc = ALERTS["api-disinformation-sr-cyrl.json"]
    names = [t["name"] for t in event_of(feed_alert(doc))["Event"]["Tag"]]
    assert 'misp-galaxy:disarm-techniques="Develop AI-Generated Text"' in names
    threat = ALERTS["api-threat-phishing.json"]
    names = [t["name"] for t in event_of(feed_alert(threat))["Event"]["Tag"]]
    assert 'misp-galaxy:mitre-attack-pattern="Spearphishing Link - T1566.002"' in names
    tags = [{"name": "tlp:green"},
            {"name": 'misp-galaxy:disarm-techniques="Develop AI-Generated Text"'},
            {"name": 'misp-galaxy:disarm-techniques="No such technique"'},
            {"name": 'misp-galaxy:mitre-attack-pattern="Phishing - T1566"'}]  # fmt: skip
    converted = alert_of(foreign_event(Tag=tags), "")
    assert converted.alert["disarm_techniques"] == ["T0085.001"]
    assert converted.alert["attack_patterns"] == ["T1566"]
    assert converted.skipped[0] == {
        "pointer": "/Tag/2/name",
        "reason": "a galaxy tag that names no technique the hub knows",
    }
    assert galaxy_tag("mitre-attack-pattern", "T9999") == 'misp-galaxy:mitre-attack-pattern="T9999"'


def test_event_uuid_is_the_hub_id() -> None:
    """The event uuid and the hub id convert both ways, so a feed needs no lookup table."""
    for _ in range(100):
        hub_id = new_ulid()
        assert uuid_to_ulid(ulid_to_uuid(hub_id)) == hub_id
    assert uuid_to_ulid("not-a-uuid") is None


def test_an_update_bumps_the_timestamp_and_keeps_attribute_uuids() -> None:
    """A later change gives a later timestamp; unchanged attributes keep their uuids even when
    the indicators are reordered."""
    doc = ALERTS["api-threat-phishing.json"]
    hub_id = new_ulid()
    first = event_of(feed_alert(doc, hub_id=hub_id))
    changed = {**doc, "indicators": list(reversed(doc["indicators"]))}
    later = FeedAlert(hub_id, changed, "al-cert", "active", "2026-11-21T10:00:00Z",
                      "2026-11-22T08:00:00Z")  # fmt: skip
    second = event_of(later)
    assert int(second["Event"]["timestamp"]) > int(first["Event"]["timestamp"])
    assert {a["uuid"] for a in first["Event"]["Attribute"]} == {
        a["uuid"] for a in second["Event"]["Attribute"]
    }


def test_a_retracted_alert_is_marked_and_its_attributes_deleted() -> None:
    """Retracted: the status tag says so, every attribute is deleted and not for IDS, and no
    hash line is left for it."""
    event = event_of(feed_alert(ALERTS["api-threat-phishing.json"], status="retracted"))
    body = event["Event"]
    assert {"name": 'alerthub:status="retracted"'} in body["Tag"]
    assert body["info"].startswith("[RETRACTED]")
    assert all(a["deleted"] and not a["to_ids"] for a in body["Attribute"])
    assert hash_lines(event) == []
    with pytest.raises(ValidationFailed) as refused:
        alert_of(body, "")
    assert refused.value.details[0].rule == "status"


def foreign_event(**changes: Any) -> dict[str, Any]:
    """An event as a MISP instance of another CERT writes it (no alerthub: tags)."""
    event = {
        "uuid": "5b8c1f7e-3d2a-4f6b-9c1e-7a2b3c4d5e6f",
        "info": "Emotet distribution via fake invoices",
        "date": "2026-11-20",
        "timestamp": "1763650000",
        "threat_level_id": "2",
        "analysis": "1",
        "distribution": "1",
        "Tag": [{"name": "tlp:amber"}, {"name": 'misp-galaxy:mitre-attack-pattern="Spearphishing '
                                                'Attachment - T1566.001"'},
                {"name": 'admiralty-scale:source-reliability="b"'}, {"name": "emotet"}],
        "Attribute": [
            {"type": "ip-dst", "value": "198.51.100.23", "category": "Network activity"},
            {"type": "ip-src", "value": "2001:db8::7", "category": "Network activity"},
            {"type": "md5", "value": hashlib.md5(b"x").hexdigest(), "category": "Payload delivery"},
            {"type": "text", "value": "seen in the wild", "category": "Other"},
            {"type": "domain", "value": "gone.example", "deleted": True},
        ],
        "Object": [{"name": "url", "Attribute": [{"type": "url", "object_relation": "url",
                                                   "value": "https://invoice.example/a.doc"}]}],
    }  # fmt: skip
    event.update(changes)
    return event


def test_a_foreign_event_maps_and_says_what_it_skipped(schema_set: SchemaSet) -> None:
    """Attributes of types the hub knows become indicators (objects' too, deleted ones not),
    ATT&CK galaxy tags become attack patterns, slug tags tags; the rest is listed as skipped."""
    converted = alert_of(foreign_event(), "/0/Event")
    alert = converted.alert
    assert alert["kind"] == "threat" and alert["tlp"] == "AMBER" and alert["severity"] == "medium"
    assert alert["attack_patterns"] == ["T1566.001"] and alert["tags"] == ["emotet"]
    assert [i["type"] for i in alert["indicators"]] == ["ipv4", "ipv6", "md5", "url"]
    assert {s["pointer"] for s in converted.skipped} == {"/0/Event/Tag/2/name",
                                                         "/0/Event/Attribute/3"}  # fmt: skip
    assert schema_set.problems("alert", alert) == []
    assert converted.pointer("/indicators/3/value") == "/0/Event/Object/0/Attribute/0/value"


@pytest.mark.parametrize(
    ("changes", "pointer", "rule"),
    [
        ({"distribution": "0"}, "/distribution", "distribution"),
        ({"distribution": 4}, "/distribution", "distribution"),
        ({"distribution": "7"}, "/distribution", "enum"),
        ({"Tag": [{"name": "tlp:amber"}, {"name": "tlp:green"}]}, "/Tag/1/name", "tlp"),
        ({"Tag": [{"name": "tlp:unclear"}]}, "/Tag/0/name", "tlp"),
        ({"Tag": [{"name": "tlp:red"}]}, "/Tag", "recipients"),
        ({"Tag": [], "distribution": None}, "/Tag", "tlp"),
        ({"uuid": "nope"}, "/uuid", "required"),
        ({"date": "yesterday"}, "/date", "format"),
        ({"timestamp": "-5"}, "/timestamp", "format"),
        ({"info": " "}, "/info", "required"),
    ],
)
def test_events_that_cannot_be_mapped_are_refused_with_pointers(
    changes: dict[str, Any], pointer: str, rule: str
) -> None:
    """Sharing that cannot be mapped without widening, and broken envelopes: 422 details that
    point into the MISP JSON."""
    event = foreign_event(**changes)
    if event.get("distribution") is None:
        event.pop("distribution")
    with pytest.raises(ValidationFailed) as refused:
        alert_of(event, "/response/3/Event")
    assert ("/response/3/Event" + pointer, rule) in {
        (d.pointer, d.rule) for d in refused.value.details
    }


@pytest.mark.parametrize(
    ("tag", "distribution", "tlp"),
    [("tlp:clear", "3", "CLEAR"), ("tlp:clear", "1", "GREEN"), ("tlp:white", "2", "GREEN"),
     ("tlp:amber+strict", "3", "AMBER+STRICT"), (None, "3", "CLEAR"), (None, "2", "GREEN"),
     ("TLP:Green", None, "GREEN")],
)  # fmt: skip
def test_distribution_narrows_the_tlp_and_never_widens_it(
    tag: str | None, distribution: str | None, tlp: str
) -> None:
    """The TLP is the narrower of the tag and what the distribution allows."""
    event = foreign_event(Tag=[{"name": tag}] if tag else [], distribution=distribution)
    if distribution is None:
        event.pop("distribution")
    assert alert_of(event, "").alert["tlp"] == tlp


def test_body_shapes_and_limits() -> None:
    """One event, a list, MISP's {response: [...]} and a bare event object are read; more than
    500 events or none is refused."""
    one = {"Event": foreign_event()}
    assert [p for p, _ in events_of(one)] == ["/Event"]
    assert [p for p, _ in events_of([one, one])] == ["/0/Event", "/1/Event"]
    assert [p for p, _ in events_of({"response": [one]})] == ["/response/0/Event"]
    assert [p for p, _ in events_of(foreign_event())] == [""]
    for body in ([one] * 501, [], {"response": []}):
        with pytest.raises(ValidationFailed):
            events_of(body)


text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
nonsense = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
event_keys = st.sampled_from(["uuid", "info", "date", "timestamp", "distribution", "Tag",
                              "Attribute", "Object", "threat_level_id", "EventTag"])  # fmt: skip


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.dictionaries(event_keys, nonsense, max_size=8), st.booleans())
def test_misp_shaped_nonsense_is_refused_cleanly(event: dict[str, Any], wrapped: bool) -> None:
    """Any JSON in MISP's shape either maps or is refused with ValidationFailed, never another
    exception."""
    body = {"Event": event} if wrapped else event
    try:
        for base, found in events_of(body):
            alert_of(found, base)
    except ValidationFailed:
        pass


# -- generated alerts --------------------------------------------------------------------------

# MISP (and PyMISP) trim attribute values: text that starts or ends with a space is not kept.
line = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"'),
               min_size=1, max_size=30).map(str.strip).filter(bool)  # fmt: skip
slug = st.from_regex(r"\A[a-z0-9]{1,8}(-[a-z0-9]{1,8})?\Z")
host = st.from_regex(r"\A[a-z][a-z0-9]{0,10}\.example\Z")
url = host.map(lambda h: f"https://{h}/p")
hexes = {n: st.text("0123456789abcdef", min_size=n, max_size=n) for n in (32, 40, 64, 128)}
indicator = st.one_of(
    host.map(lambda v: {"type": "domain", "value": v}),
    url.map(lambda v: {"type": "url", "value": v}),
    st.ip_addresses(v=4).map(lambda v: {"type": "ipv4", "value": str(v)}),
    st.ip_addresses(v=6).map(lambda v: {"type": "ipv6", "value": str(v)}),
    host.map(lambda h: {"type": "email", "value": f"info@{h}"}),
    hexes[32].map(lambda v: {"type": "md5", "value": v}),
    hexes[40].map(lambda v: {"type": "sha1", "value": v}),
    hexes[64].map(lambda v: {"type": "sha256", "value": v}),
    hexes[128].map(lambda v: {"type": "sha512", "value": v}),
    st.integers(1000, 99999).map(lambda n: {"type": "cve", "value": f"CVE-2026-{n}"}),
    st.integers(1, 99999).map(lambda n: {"type": "asn", "value": f"AS{n}"}),
    st.sampled_from(["file-name", "file-path", "user-agent", "mutex", "registry-key"]).flatmap(
        lambda t: line.filter(lambda v: "/" not in v and "\\" not in v).map(
            lambda v: {"type": t, "value": v}
        )
    ),
)
language = st.sampled_from(["sr-Cyrl", "sr-Latn", "sq", "mk", "en"])
claim = st.builds(
    lambda text, lang, verdict, fc: {"text": text, "language": lang, **verdict, **fc},
    line, language,
    st.just({}) | st.sampled_from(["false", "misleading"]).map(lambda v: {"verdict": v}),
    st.just({}) | url.map(lambda u: {"fact_check_url": u}),
)  # fmt: skip
actor = st.builds(
    lambda platform, handle, name, link: {"platform": platform, **handle, **name, **link},
    slug, st.just({}) | line.map(lambda h: {"handle": h}),
    st.just({}) | line.map(lambda n: {"name": n}), st.just({}) | url.map(lambda u: {"url": u}),
)  # fmt: skip
media = st.one_of(
    hexes[64].map(lambda v: {"algorithm": "sha256", "value": v}),
    hexes[32].map(lambda v: {"algorithm": "md5", "value": v}),
    st.text("0123456789abcdef", min_size=16, max_size=16).map(
        lambda v: {"algorithm": "phash", "value": v}
    ),
)
technique = st.from_regex(r"\AT[0-9]{4}(\.[0-9]{3})?\Z")


def uniq(strategy: Any, **kw: Any) -> Any:
    return st.lists(strategy, unique_by=lambda x: json.dumps(x, sort_keys=True), **kw)


@st.composite
def alerts(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["threat", "disinformation"]))
    tlp = draw(st.sampled_from(["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]))
    doc: dict[str, Any] = {
        "id": draw(st.from_regex(r"\A[a-z]{2}-cert-[0-9]{1,4}\Z")),
        "kind": kind, "title": draw(line), "severity": draw(st.sampled_from(
            ["low", "medium", "high", "critical"])), "tlp": tlp,
        "observed_at": draw(st.sampled_from(["2026-11-20T08:15:00Z", "2026-01-02T23:59:59Z"])),
    }  # fmt: skip
    optional = {
        "summary": line, "confidence": st.integers(0, 100),
        "valid_until": st.just("2026-12-20T00:00:00Z"),
        "target_countries": uniq(st.sampled_from(["AL", "BA", "XK", "ME", "MK", "RS"]), max_size=3),
        "languages": uniq(language, max_size=2), "tags": uniq(slug, max_size=3),
        "references": uniq(st.builds(lambda u, t: {"url": u, **t}, url,
                                     st.just({}) | line.map(lambda t: {"title": t})), max_size=2),
    }  # fmt: skip
    if kind == "threat":
        doc["indicators"] = draw(uniq(indicator, min_size=1, max_size=6))
        optional |= {
            "attack_patterns": uniq(technique, max_size=2),
            "sectors": uniq(slug, max_size=2),
        }
    else:
        optional |= {"narrative": line, "claims": uniq(claim, min_size=1, max_size=3),
                     "urls": uniq(url, min_size=1, max_size=3),
                     "platforms": uniq(slug, max_size=2),
                     "actors": uniq(actor, min_size=1, max_size=2),
                     "disarm_techniques": uniq(technique, max_size=2),
                     "media_hashes": uniq(media, min_size=1, max_size=2)}  # fmt: skip
        doc["narrative"] = draw(line)
    for key, strategy in optional.items():
        if draw(st.booleans()):
            doc[key] = draw(strategy)
    share = {}
    if tlp == "RED" or draw(st.booleans()):
        share["recipients"] = draw(
            uniq(st.sampled_from(["me-cert", "RS", "fc-ba"]), min_size=1, max_size=2)
        )
    if draw(st.booleans()):
        share["withhold_from"] = draw(
            uniq(st.sampled_from(["XK", "mk-cert"]), min_size=1, max_size=2)
        )
    if share:
        doc["share"] = share
    return doc


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(alerts(), st.sampled_from(["active", "expired"]))
def test_generated_alerts_round_trip_through_pymisp(
    schema_set: SchemaSet, doc: dict[str, Any], status: str
) -> None:
    """Any valid alert: PyMISP loads its event with types MISP knows; the event, written again
    by PyMISP, imports back to the same alert."""
    schemas = schema_set
    assert schemas.problems("alert", doc) == [], schemas.problems("alert", doc)
    event = event_of(feed_alert(doc, status=status))
    misp = MISPEvent()
    misp.load(copy.deepcopy(event))
    categories = describe_types["category_type_mappings"]
    for attribute in misp.attributes:
        assert attribute.type in categories[attribute.category], (
            attribute.type,
            attribute.category,
        )
    [(base, body)] = events_of(json.loads(misp.to_json()))
    converted = alert_of(body, base)
    assert converted.skipped == []
    assert comparable({**converted.alert, "id": doc["id"]}) == comparable(doc)
    assert schemas.problems("alert", converted.alert) == []


def test_a_problem_with_a_whole_list_points_at_the_list(schema_set: SchemaSet) -> None:
    """Over 1,000 indicators: the schema's problem with /indicators points at the event's
    Attribute list, not at one attribute."""
    attributes = [{"type": "domain", "value": f"d{i}.example"} for i in range(1001)]
    converted = alert_of(foreign_event(Attribute=attributes, Object=[]), "/0/Event")
    [problem] = schema_set.problems("alert", converted.alert)
    assert (problem.pointer, converted.pointer(problem.pointer)) == (
        "/indicators",
        "/0/Event/Attribute",
    )


def test_attributes_shared_more_narrowly_than_the_event_are_left_out() -> None:
    """An attribute tagged with a narrower TLP, or kept to an organisation or sharing group
    (itself or its object), is skipped with its reason, never shared as widely as the event."""
    attributes = [
        {"type": "domain", "value": "open.example"},
        {"type": "domain", "value": "red.example", "Tag": [{"name": "tlp:red"}]},
        {"type": "domain", "value": "green.example", "Tag": [{"name": "tlp:green"}]},
        {"type": "domain", "value": "mine.example", "distribution": "0"},
        {"type": "domain", "value": "group.example", "distribution": 4},
    ]
    objects = [{"distribution": "0", "Attribute": [{"type": "url", "value": "https://o.example/"}]}]
    converted = alert_of(foreign_event(Attribute=attributes, Object=objects), "")
    assert converted.alert["tlp"] == "AMBER"
    assert [i["value"] for i in converted.alert["indicators"]] == ["open.example", "green.example"]
    own = ": post it in an event of its own"
    skipped = converted.skipped
    assert {s["pointer"]: s["reason"] for s in skipped if "/Tag/" not in s["pointer"]} == {
        "/Attribute/1": "it is tagged tlp:red, narrower than the event's TLP:AMBER" + own,
        "/Attribute/3": "its distribution is your organisation only" + own,
        "/Attribute/4": "its distribution is a sharing group" + own,
        "/Object/0": "its distribution is your organisation only" + own,
    }


def test_galaxy_clusters_of_a_rest_answer_are_read() -> None:
    """A cluster MISP lists under Galaxy (its REST answers) counts as its tag, once."""
    tag = 'misp-galaxy:mitre-attack-pattern="Spearphishing Link - T1566.002"'
    galaxy = [{"type": "mitre-attack-pattern", "GalaxyCluster": [{"tag_name": tag}]}]
    converted = alert_of(foreign_event(Galaxy=galaxy), "")
    assert converted.alert["attack_patterns"] == ["T1566.001", "T1566.002"]
    converted = alert_of(
        foreign_event(Galaxy=galaxy, Tag=[{"name": "tlp:green"}, {"name": tag}]), ""
    )
    assert converted.alert["attack_patterns"] == ["T1566.002"]
    assert not [s for s in converted.skipped if "Galaxy" in s["pointer"]]


# A model of MISP pulling a feed while one alert changes: (second, "change" | "pull") steps.
steps = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(["change", "pull"])), min_size=1, max_size=12
)


def misp_holds_the_last_version(script: list[tuple[int, str]], settle: bool) -> bool:
    """Whether a MISP that pulls as the script says, and once more after its last second,
    ends holding the alert's last version; `settle` reads with event_timestamp's rule."""
    second, version, changed = 100, 0, 100
    held: tuple[int, int] | None = None  # (version, timestamp)
    for step, (advance, action) in enumerate(script):
        second += advance
        if action == "change":
            version, changed = step + 1, second
        read = FeedAlert(new_ulid(), {}, "x", "active", "1970-01-01T00:00:00Z",
                         datetime.fromtimestamp(changed, UTC).isoformat(),
                         second if settle else None)  # fmt: skip
        if action == "pull" and (held is None or event_timestamp(read) > held[1]):
            held = (version, event_timestamp(read))
    final = FeedAlert(new_ulid(), {}, "x", "active", "1970-01-01T00:00:00Z",
                      datetime.fromtimestamp(changed, UTC).isoformat(), second + 1)  # fmt: skip
    if held is None or event_timestamp(final) > held[1]:
        held = (version, event_timestamp(final))
    return held[0] == version


@settings(max_examples=300, deadline=None, derandomize=True)
@given(steps)
def test_misp_always_ends_with_the_last_version(script: list[tuple[int, str]]) -> None:
    """However changes and MISP's pulls interleave within seconds, a pull after the last
    change's second fetches the last version: the timestamp read in the second of a change is
    one less than the change's."""
    assert misp_holds_the_last_version(script, settle=True)


def test_without_the_rule_a_change_in_the_second_of_a_pull_is_lost() -> None:
    """The case the rule is for: two changes in one second with a pull between them."""
    script = [(0, "change"), (0, "pull"), (0, "change"), (1, "pull")]
    assert not misp_holds_the_last_version(script, settle=False)
    assert misp_holds_the_last_version(script, settle=True)

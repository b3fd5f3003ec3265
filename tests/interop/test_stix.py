"""The STIX 2.1 mapping: every bundle passes the OASIS validator (stix2-validator, unmodified)
with no errors and loads with stix2.parse; ids are deterministic; updates and retractions are
versions."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import stix2
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stix2validator import ValidationOptions, validate_instance

from hub.ingest.validation import SchemaSet
from hub.interop.stix import AlertVersion, Sender, alert_bundle, alert_objects, bundle
from hub.interop.stix_fact_checks import FactCheckVersion, fact_check_objects
from hub.interop.stix_parts import TLP_EXTENSION, TLP_IDS, indicator_pattern, report_id

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
SENDER = Sender("rs-cert", "CERT of Serbia", "RS", "government", "2026-01-02T03:04:05Z")
FACT_CHECK = {
    "fact_check_id": "01JFACTCHECK0000000000000",
    "claim_reviewed": "NATO is massing troops near Zvečan",
    "rating": {"value": 1, "alternate_name": "False"},
    "url": "https://factcheck.example/kfor",
    "language": "sr-Latn",
    "summary": "No troop build-up; the photos are from 2019.",
}
OPTIONS = ValidationOptions(version="2.1")


def example_alerts() -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text()) for p in sorted((EXAMPLES / "alert" / "valid").glob("*.json"))
    ]


def version(doc: dict[str, Any], **changes: Any) -> AlertVersion:
    fields: dict[str, Any] = {
        "hub_id": "01JDZ5Q0000000000000000000",
        "doc": doc,
        "sender": SENDER,
        "received_at": "2026-11-20T08:16:00.123456Z",
    }
    fields.update(changes)
    return AlertVersion(**fields)


def assert_valid(bundle: dict[str, Any]) -> None:
    result = validate_instance(copy.deepcopy(bundle), OPTIONS)
    assert result.is_valid, [str(e) for e in result.errors]
    stix2.parse(bundle, allow_custom=False)


@pytest.mark.parametrize("doc", example_alerts(), ids=lambda d: d["id"])
def test_every_example_alert_maps_to_a_valid_bundle(doc: dict[str, Any]) -> None:
    """Each example alert, with a fact-check, is a bundle the OASIS validator and stix2 accept."""
    assert_valid(alert_bundle(version(doc, fact_checks=(FACT_CHECK,))))


@pytest.mark.parametrize("doc", example_alerts(), ids=lambda d: d["id"])
def test_updated_and_retracted_versions_are_valid(doc: dict[str, Any]) -> None:
    """An update and a retraction are valid bundles too."""
    assert_valid(alert_bundle(version(doc, updated_at="2026-11-21T00:00:00Z")))
    retracted = version(doc, status="retracted", retracted_at="2026-11-22T00:00:00.5Z")
    assert_valid(alert_bundle(retracted))


def test_every_object_carries_the_alert_tlp_and_its_marking_travels_with_it() -> None:
    """Each object but the markings carries a TLP 2.0 marking shipped in the same bundle."""
    for doc in example_alerts():
        objects = alert_objects(version(doc))
        shipped = {o["id"] for o in objects if o["type"] == "marking-definition"}
        assert TLP_IDS[doc["tlp"]] in shipped
        for obj in objects:
            if obj["type"] == "marking-definition":
                ext = obj["extensions"][TLP_EXTENSION]
                assert ext["tlp_2_0"] == obj["name"].removeprefix("TLP:").lower()
                continue
            assert set(obj["object_marking_refs"]) <= shipped
            if obj["type"] not in ("identity", "location", "relationship"):
                assert obj["object_marking_refs"] == [TLP_IDS[doc["tlp"]]]


def test_ids_are_deterministic_and_depend_on_the_hub_id() -> None:
    """Mapping the same alert twice gives the same objects; another hub id gives other ids."""
    doc = example_alerts()[0]
    assert alert_objects(version(doc)) == alert_objects(version(copy.deepcopy(doc)))
    other = alert_objects(version(doc, hub_id="01JDZ5Q0000000000000000001"))
    assert report_id("01JDZ5Q0000000000000000000") != other[0]["id"]


def test_an_update_is_a_new_version_and_a_retraction_revokes() -> None:
    """Same ids, a later `modified`; a retraction sets `revoked` on every SDO."""
    doc = json.loads((EXAMPLES / "alert" / "valid" / "api-threat-phishing.json").read_text())
    first = alert_objects(version(doc))
    updated = alert_objects(version(doc, updated_at="2026-11-21T00:00:00Z"))
    retracted = alert_objects(
        version(
            doc,
            updated_at="2026-11-21T00:00:00Z",
            status="retracted",
            retracted_at="2026-11-22T00:00:00Z",
        )
    )
    assert first[0]["id"] == updated[0]["id"] == retracted[0]["id"]
    assert first[0]["modified"] < updated[0]["modified"] < retracted[0]["modified"]
    assert retracted[0]["modified"] == "2026-11-22T00:00:00.000Z"
    assert first[0]["created"] == retracted[0]["created"]
    for obj in retracted:
        if obj["type"] in ("report", "indicator", "attack-pattern", "note", "vulnerability"):
            assert obj["revoked"] is True
    assert not any(o.get("revoked") for o in first)


def test_threat_indicators_become_patterns_and_attack_patterns_cite_attack() -> None:
    """Indicators are STIX patterns with valid_from = observed_at; ATT&CK ids are cited."""
    doc = json.loads((EXAMPLES / "alert" / "valid" / "api-threat-phishing.json").read_text())
    doc["valid_until"] = "2026-12-01T00:00:00Z"
    objects = alert_objects(version(doc))
    patterns = {o["pattern"] for o in objects if o["type"] == "indicator"}
    assert "[domain-name:value = 'e-albania-gov.example']" in patterns
    assert "[ipv4-addr:value = '203.0.113.7']" in patterns
    indicator = next(o for o in objects if o["type"] == "indicator")
    assert indicator["valid_from"] == "2026-11-21T10:00:00.000Z"
    assert indicator["valid_until"] == "2026-12-01T00:00:00.000Z"
    attack = [o for o in objects if o["type"] == "attack-pattern"]
    assert attack[0]["external_references"][0]["source_name"] == "mitre-attack"
    assert attack[0]["external_references"][0]["external_id"] == doc["attack_patterns"][0]


def test_disinformation_maps_narrative_claims_observables_and_disarm() -> None:
    """Narrative and claims are notes, URLs and media hashes observables, DISARM cited."""
    doc = json.loads((EXAMPLES / "alert" / "valid" / "api-disinformation-sr-cyrl.json").read_text())
    objects = alert_objects(version(doc))
    by_type: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_type.setdefault(obj["type"], []).append(obj)
    notes = {n["abstract"]: n for n in by_type["note"]}
    assert notes["Narrative"]["content"] == doc["narrative"]
    assert notes["Claim"]["content"] == doc["claims"][0]["text"]
    assert [u["value"] for u in by_type["url"]] == doc["urls"]
    assert by_type["file"][0]["hashes"] == {"SHA-256": doc["media_hashes"][0]["value"]}
    disarm = by_type["attack-pattern"][0]["external_references"][0]
    assert disarm == {
        "source_name": "DISARM",
        "external_id": doc["disarm_techniques"][0],
        "url": disarm["url"],
    }
    report = objects[0]
    assert report["type"] == "report"
    carried = {o["id"] for o in objects if o["type"] not in ("marking-definition",)}
    assert set(report["object_refs"]) <= carried
    assert "language:sr-Cyrl" in report["labels"]


@pytest.mark.parametrize(
    ("kind", "value", "pattern"),
    [
        ("url", "https://x.example/a'b\\c", "[url:value = 'https://x.example/a\\'b\\\\c']"),
        ("sha256", "AB" * 32, "[file:hashes.'SHA-256' = '" + "ab" * 32 + "']"),
        ("asn", "AS64500", "[autonomous-system:number = 64500]"),
        ("asn", "ASX", None),
        ("cve", "CVE-2024-3094", None),
        ("file-path", "C:\\Temp\\evil.exe", None),
    ],
)
def test_indicator_patterns(kind: str, value: str, pattern: str | None) -> None:
    """Quotes and backslashes are escaped; non-observables have no pattern."""
    found = indicator_pattern(kind, value)
    if kind == "file-path":
        assert found == "[file:parent_directory_ref.path = 'C:\\\\Temp' AND file:name = 'evil.exe']"
    else:
        assert found == pattern


# -- generated alerts: whatever the schema accepts maps to a valid bundle

_SAFE = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_categories=("Cs",)),
    min_size=1,
    max_size=30,
)
_LABEL = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
_HEX = "0123456789abcdef"


def _hex(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=_HEX, min_size=n, max_size=n)


INDICATORS = st.one_of(
    st.builds(lambda h: {"type": "domain", "value": f"{h}.example"}, _LABEL),
    st.builds(lambda h, p: {"type": "url", "value": f"https://{h}.example/{p}"}, _LABEL, _LABEL),
    st.builds(
        lambda a, b: {"type": "ipv4", "value": f"198.51.{a}.{b}"},
        st.integers(0, 255),
        st.integers(0, 255),
    ),
    st.builds(lambda a: {"type": "ipv6", "value": f"2001:db8::{a:x}"}, st.integers(0, 65535)),
    st.builds(lambda u: {"type": "email", "value": f"{u}@mail.example"}, _LABEL),
    st.builds(lambda v: {"type": "md5", "value": v}, _hex(32)),
    st.builds(lambda v: {"type": "sha1", "value": v}, _hex(40)),
    st.builds(lambda v: {"type": "sha256", "value": v}, _hex(64)),
    st.builds(lambda v: {"type": "sha512", "value": v}, _hex(128)),
    st.builds(lambda n: {"type": "cve", "value": f"CVE-2024-{n}"}, st.integers(1000, 99999)),
    st.builds(lambda n: {"type": "asn", "value": f"AS{n}"}, st.integers(1, 2**32 - 1)),
    st.builds(lambda v: {"type": "file-name", "value": v}, _SAFE),
    st.builds(lambda v: {"type": "file-path", "value": f"C:\\Users\\{v}\\x.dll"}, _SAFE),
    st.builds(lambda v: {"type": "user-agent", "value": v}, _SAFE),
    st.builds(lambda v: {"type": "mutex", "value": v}, _SAFE),
    st.builds(lambda v: {"type": "registry-key", "value": f"HKEY_LOCAL_MACHINE\\{v}"}, _SAFE),
)
TECHNIQUES = st.from_regex(r"T[0-9]{4}(\.[0-9]{3})?", fullmatch=True)
COMMON = {
    "title": _SAFE,
    "severity": st.sampled_from(["low", "medium", "high", "critical"]),
    "tlp": st.sampled_from(list(TLP_IDS)),
    "languages": st.lists(st.sampled_from(["sq", "sr-Cyrl", "sr-Latn", "mk", "bs"]), unique=True),
    "observed_at": st.sampled_from(["2026-11-20T08:15:00Z", "2026-11-20T09:15:00.5+01:00"]),
    "tags": st.lists(_LABEL, unique=True, max_size=3),
}


@st.composite
def alerts(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "gen-1", **{k: draw(v) for k, v in COMMON.items()}}
    if doc["tlp"] == "RED":
        doc["share"] = {"recipients": ["al-cert"]}
    if draw(st.booleans()):
        doc["kind"] = "threat"
        doc["indicators"] = draw(
            st.lists(INDICATORS, min_size=1, max_size=6, unique_by=lambda i: i["value"])
        )
        doc["attack_patterns"] = draw(st.lists(TECHNIQUES, unique=True, max_size=3))
    else:
        doc["kind"] = "disinformation"
        doc["narrative"] = draw(_SAFE)
        doc["claims"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"text": _SAFE, "language": st.sampled_from(["sq", "sr-Cyrl", "mk"])},
                    optional={"verdict": st.sampled_from(["false", "misleading"])},
                ),
                max_size=3,
                unique_by=lambda c: c["text"],
            )
        )
        doc["urls"] = draw(
            st.lists(st.builds(lambda h: f"https://{h}.example/x", _LABEL), unique=True)
        )
        doc["disarm_techniques"] = draw(st.lists(TECHNIQUES, unique=True, max_size=3))
        doc["media_hashes"] = draw(
            st.lists(
                st.builds(lambda v: {"algorithm": "sha256", "value": v}, _hex(64))
                | st.builds(lambda v: {"algorithm": "phash", "value": v}, _hex(16)),
                max_size=2,
                unique_by=lambda m: m["value"],
            )
        )
        doc["actors"] = draw(
            st.lists(
                st.builds(lambda h: {"platform": "telegram", "handle": f"@{h}"}, _LABEL),
                unique_by=lambda a: a["handle"],
            )
        )
    if draw(st.booleans()):
        doc["valid_until"] = "2026-12-20T00:00:00Z"
    return {k: v for k, v in doc.items() if v != []}  # the schema refuses empty lists


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return SchemaSet()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(doc=alerts(), retracted=st.booleans())
def test_generated_alerts_map_to_valid_bundles(
    schemas: SchemaSet, doc: dict[str, Any], retracted: bool
) -> None:
    """Any alert the hub's schema accepts gives a bundle the validator and stix2 accept."""
    assume(not schemas.problems("alert", doc))  # only alerts the hub would store
    status = "retracted" if retracted else "active"
    assert_valid(alert_bundle(version(doc, status=status, retracted_at="2026-11-23T00:00:00Z")))


def test_a_fact_check_alone_is_a_valid_note_by_its_checker() -> None:
    """A fact-check version maps to a note on its alert's report, by the checker, with the
    alert's TLP, the same id as inside the alert's objects; a retraction revokes it."""
    checker = Sender("factcheck-ba", "Fact-checkers BA", "BA", "civil-society")
    fields: dict[str, Any] = {
        "fact_check_id": FACT_CHECK["fact_check_id"],
        "hub_id": "01JDZ5Q0000000000000000000",
        "tlp": "AMBER",
        "doc": {k: v for k, v in FACT_CHECK.items() if k != "fact_check_id"},
        "checker": checker,
        "received_at": "2026-11-21T09:30:00Z",
    }
    objects = fact_check_objects(FactCheckVersion(**fields))
    assert_valid(bundle(objects, "fc"))
    note = objects[0]
    assert note["object_refs"] == [report_id(fields["hub_id"])]
    assert note["object_marking_refs"] == [TLP_IDS["AMBER"]]
    assert note["created_by_ref"] == next(o["id"] for o in objects if o["type"] == "identity")
    doc = example_alerts()[0]
    inside = alert_objects(version(doc, fact_checks=(FACT_CHECK,)))
    assert note["id"] in {o["id"] for o in inside if o["type"] == "note"}
    retracted = FactCheckVersion(**fields, status="retracted", retracted_at="2026-11-22T00:00:00Z")
    revoked = fact_check_objects(retracted)
    assert_valid(bundle(revoked, "fc2"))
    assert revoked[0]["revoked"] is True and revoked[0]["modified"] > note["modified"]

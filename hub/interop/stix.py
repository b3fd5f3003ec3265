"""Alert → STIX 2.1 objects. Pure: no I/O, the same input gives the same objects, byte for byte.

Each alert becomes a `report` that refers to everything it carries; its sender an `identity`
(with a `location` for its country); threat indicators `indicator`s with STIX patterns, ATT&CK
techniques and DISARM techniques `attack-pattern`s with the framework's external reference, CVEs
`vulnerability`s; a disinformation alert's narrative, claims and fact-checks `note`s (the
documented alternative to OpenCTI's own `narrative` SDO, which is not part of STIX 2.1 and would
need OpenCTI's extension definition), its URLs, media hashes and accounts observables.

Every object carries the alert's TLP 2.0 marking definition (the OASIS objects, in
stix_parts.py), and the marking definitions travel with the objects. The sender's identity and
location are shared by all of a node's alerts and are not secret (every node is a registered
member): they are marked TLP:CLEAR so that one (id, version) never carries two markings.

Ids are UUIDv5 of the hub id and the part, so exporting an alert twice gives the same objects; an
update is a new version (`modified`), a retraction a version with `revoked: true`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from hub.interop.stix_parts import (
    HASH_NAMES,
    TLP_CREATED,
    TLP_IDS,
    fact_check_note,
    identity_id,
    indicator_pattern,
    report_id,
    stix_id,
    stix_time,
    tlp_marking,
)

ATTACK_URL = "https://attack.mitre.org/techniques/{}/"
DISARM_URL = (
    "https://github.com/DISARMFoundation/DISARMframeworks/blob/main/generated_pages/"
    "techniques/{}.md"
)
SECTORS = {"government": "government", "civil-society": "non-profit"}


@dataclass(frozen=True, slots=True)
class Sender:
    """The node that sent an alert, as its `identity` shows it."""

    id: str
    name: str
    country: str | None
    kind: str
    created_at: str = ""


@dataclass(frozen=True, slots=True)
class AlertVersion:
    """One stored version of an alert: its body and the hub's fields that STIX needs."""

    hub_id: str
    doc: dict[str, Any]
    sender: Sender
    received_at: str
    updated_at: str | None = None
    retracted_at: str | None = None
    status: str = "active"
    fact_checks: tuple[dict[str, Any], ...] = field(default=())

    @property
    def retracted(self) -> bool:
        return self.status == "retracted"

    @property
    def modified(self) -> str:
        """When this version was stored: the STIX `modified` of every object it makes."""
        if self.retracted and self.retracted_at:
            return self.retracted_at
        return self.updated_at or self.received_at


@lru_cache(maxsize=1024)
def shared_sender_objects(sender: Sender) -> tuple[dict[str, Any], ...]:
    """`sender_objects`, cached: the same dicts each time; copy before changing one."""
    return tuple(sender_objects(sender))


def sender_objects(sender: Sender) -> list[dict[str, Any]]:
    """The sender's identity and, when it has a country, its location and the link between."""
    created = stix_time(sender.created_at) if sender.created_at else TLP_CREATED
    clear = [TLP_IDS["CLEAR"]]
    identity: dict[str, Any] = {
        "type": "identity",
        "spec_version": "2.1",
        "id": identity_id(sender.id),
        "created": created,
        "modified": created,
        "name": sender.name or sender.id,
        "identity_class": "organization",
        "description": f"alerthub node {sender.id} ({sender.kind}"
        + (f", {sender.country})" if sender.country else ")"),
        "object_marking_refs": clear,
    }
    sector = SECTORS.get(sender.kind)
    if sector:
        identity["sectors"] = [sector]
    if not sender.country:
        return [identity]
    location = {
        "type": "location",
        "spec_version": "2.1",
        "id": stix_id("location", "country", sender.country),
        "created": TLP_CREATED,
        "modified": TLP_CREATED,
        "name": sender.country,
        "country": sender.country,
        "object_marking_refs": clear,
    }
    link = {
        "type": "relationship",
        "spec_version": "2.1",
        "id": stix_id("relationship", "node", sender.id, "located-at", sender.country),
        "created": created,
        "modified": created,
        "relationship_type": "located-at",
        "source_ref": identity["id"],
        "target_ref": location["id"],
        "object_marking_refs": clear,
    }
    return [identity, location, link]


class _Builder:
    """Collects the objects of one alert version, each with the common properties set."""

    def __init__(self, alert: AlertVersion) -> None:
        self.alert = alert
        self.created = stix_time(alert.received_at)
        self.modified = max(self.created, stix_time(alert.modified))
        self.marking = TLP_IDS[alert.doc["tlp"]]
        self.author = identity_id(alert.sender.id)
        self.objects: list[dict[str, Any]] = []

    def sdo(self, kind: str, part: str, **props: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": kind,
            "spec_version": "2.1",
            "id": stix_id(kind, self.alert.hub_id, part),
            "created": self.created,
            "modified": self.modified,
            "created_by_ref": self.author,
            **props,
            "object_marking_refs": [self.marking],
        }
        if self.alert.retracted:
            obj["revoked"] = True
        self.objects.append(obj)
        return obj

    def sco(self, kind: str, part: str, **props: Any) -> dict[str, Any]:
        obj = {
            "type": kind,
            "spec_version": "2.1",
            "id": stix_id(kind, self.alert.hub_id, part),
            **props,
            "object_marking_refs": [self.marking],
        }
        self.objects.append(obj)
        return obj


def alert_objects(alert: AlertVersion) -> list[dict[str, Any]]:
    """Every STIX object of the alert: the report first, then what it refers to, then the
    sender's objects and the marking definitions they use (each once)."""
    build = _Builder(alert)
    doc = alert.doc
    _threat_objects(build, doc)
    _disinformation_objects(build, doc)
    _fact_check_objects(build, alert.fact_checks)
    carried = list(build.objects)
    sender = list(shared_sender_objects(alert.sender))
    report = _report(build, doc, [o["id"] for o in carried] + [sender[0]["id"]])
    used = {"CLEAR", alert.doc["tlp"]}
    markings = [tlp_marking(tlp) for tlp in TLP_IDS if tlp in used]
    return [report, *carried, *sender, *markings]


def _report(build: _Builder, doc: dict[str, Any], refs: list[str]) -> dict[str, Any]:
    labels = [f"kind:{doc['kind']}", f"severity:{doc['severity']}"]
    labels += [f"language:{lang}" for lang in doc.get("languages", ())]
    labels += [f"target-country:{c}" for c in doc.get("target_countries", ())]
    labels += [f"platform:{p}" for p in doc.get("platforms", ())]
    labels += list(doc.get("tags", ()))
    refs_out = [
        {
            "source_name": "alerthub",
            "external_id": build.alert.hub_id,
            "description": f"{build.alert.sender.id}/{doc['id']} revision {doc.get('revision', 1)}",
        }
    ]
    for media in doc.get("media_hashes", ()):
        if media["algorithm"] not in HASH_NAMES:
            refs_out.append(
                {"source_name": f"media-hash:{media['algorithm']}", "external_id": media["value"]}
            )
    for ref in doc.get("references", ()):
        refs_out.append(
            {"source_name": ref.get("title") or "reference", "url": ref["url"]},
        )
    props: dict[str, Any] = {
        "name": doc["title"],
        "report_types": ["threat-report"],
        "published": build.created,
        "object_refs": refs,
        "labels": list(dict.fromkeys(labels)),
        "external_references": refs_out,
    }
    if doc.get("summary"):
        props["description"] = doc["summary"]
    if "confidence" in doc:
        props["confidence"] = doc["confidence"]
    report = build.sdo("report", "report", **props)
    build.objects.pop()  # the report goes first, not among what it carries
    return report


def _valid_window(doc: dict[str, Any]) -> dict[str, str]:
    window = {"valid_from": stix_time(doc["observed_at"])}
    if doc.get("valid_until"):
        until = stix_time(doc["valid_until"])
        if until > window["valid_from"]:  # STIX requires valid_until after valid_from
            window["valid_until"] = until
    return window


def _threat_objects(build: _Builder, doc: dict[str, Any]) -> None:
    for n, indicator in enumerate(doc.get("indicators", ())):
        kind, value = indicator["type"], indicator["value"]
        if kind == "cve":
            build.sdo(
                "vulnerability",
                f"cve/{value.upper()}",
                name=value.upper(),
                external_references=[{"source_name": "cve", "external_id": value.upper()}],
            )
            continue
        pattern = indicator_pattern(kind, value)
        if pattern is None:
            continue
        build.sdo(
            "indicator",
            f"indicator/{n}",
            name=f"{kind}: {value}"[:250],
            description=doc["title"],
            indicator_types=["malicious-activity"],
            pattern=pattern,
            pattern_type="stix",
            **_valid_window(doc),
        )
    for technique in doc.get("attack_patterns", ()):
        build.sdo(
            "attack-pattern",
            f"attack/{technique}",
            name=technique,
            external_references=[
                {
                    "source_name": "mitre-attack",
                    "external_id": technique,
                    "url": ATTACK_URL.format(technique.replace(".", "/")),
                }
            ],
        )


def _disinformation_objects(build: _Builder, doc: dict[str, Any]) -> None:
    report = report_id(build.alert.hub_id)
    if doc.get("narrative"):
        build.sdo(
            "note",
            "narrative",
            abstract="Narrative",
            content=doc["narrative"],
            labels=["narrative"],
            object_refs=[report],
        )
    for n, claim in enumerate(doc.get("claims", ())):
        props: dict[str, Any] = {
            "abstract": "Claim",
            "content": claim["text"],
            # As a label, not `lang`: the OASIS validator knows only a short list of tags, without
            # sr, sr-Latn or sr-Cyrl.
            "labels": ["claim", f"language:{claim['language']}"]
            + ([f"verdict:{claim['verdict']}"] if "verdict" in claim else []),
            "object_refs": [report],
        }
        if claim.get("fact_check_url"):
            props["external_references"] = [
                {"source_name": "fact-check", "url": claim["fact_check_url"]}
            ]
        build.sdo("note", f"claim/{n}", **props)
    for n, url in enumerate(doc.get("urls", ())):
        build.sco("url", f"url/{n}", value=url)
    for n, media in enumerate(doc.get("media_hashes", ())):
        # Perceptual hashes (phash, pdq) are no STIX hash algorithm: the report names them.
        if media["algorithm"] in HASH_NAMES:
            name = HASH_NAMES[media["algorithm"]]
            build.sco("file", f"media/{n}", hashes={name: media["value"].lower()})
    for n, actor in enumerate(doc.get("actors", ())):
        props = {"account_type": actor["platform"]}
        if actor.get("handle"):
            props["account_login"] = actor["handle"]
        if actor.get("name"):
            props["display_name"] = actor["name"]
        build.sco("user-account", f"actor/{n}", **props)
    for technique in doc.get("disarm_techniques", ()):
        build.sdo(
            "attack-pattern",
            f"disarm/{technique}",
            name=technique,
            external_references=[
                {
                    "source_name": "DISARM",
                    "external_id": technique,
                    "url": DISARM_URL.format(technique),
                }
            ],
        )


def _fact_check_objects(build: _Builder, fact_checks: tuple[dict[str, Any], ...]) -> None:
    """Each fact-check (ClaimReview fields) a note on the report, its verdict as a label."""
    report = report_id(build.alert.hub_id)
    for check in fact_checks:
        fact_check_id = check.get("fact_check_id", check.get("id", ""))
        build.sdo("note", f"fact-check/{fact_check_id}", **fact_check_note(check, report))


def bundle(objects: list[dict[str, Any]], part: str) -> dict[str, Any]:
    """A STIX bundle of `objects`, its id from `part` (say, a hub id and a version)."""
    return {"type": "bundle", "id": stix_id("bundle", part), "objects": objects}


def alert_bundle(alert: AlertVersion) -> dict[str, Any]:
    """The alert version as one bundle (what `alert_objects` gives, in a bundle)."""
    return bundle(alert_objects(alert), f"{alert.hub_id}/{alert.modified}")

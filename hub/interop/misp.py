"""Alerts as MISP events (the JSON of MISP's feeds and REST API, as PyMISP reads it). Pure.

An alert becomes one event: its uuid is the alert's hub id read as 128 bits (a ULID is a UUID's
size), so a feed request for `{uuid}.json` needs no lookup table and an update keeps the uuid; its
`timestamp` is the alert's last change, so MISP fetches it again after an update or retraction.
The alert's own fields travel as MISP's conventions have them (TLP as `tlp:` tags, ATT&CK and
DISARM as galaxy tags, indicators as typed attributes), and what MISP has no field for as machine
tags in the `alerthub:` namespace, so that an event posted back (misp_import.py) gives the alert.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from hub.interop.galaxies import ATTACK, DISARM, galaxy_tag

# Crockford base32, as hub/ids.py writes ULIDs.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}
# Namespaces of the uuids this module makes (UUIDv5): organisations and attributes.
ORG_NAMESPACE = uuid.UUID("6f1d3c0e-3b5a-5c8e-9a52-1f0c7b6e2a41")

NS = "alerthub"
TLP_TAG = {
    "CLEAR": "tlp:clear",
    "GREEN": "tlp:green",
    "AMBER": "tlp:amber",
    "AMBER+STRICT": "tlp:amber+strict",
    "RED": "tlp:red",
}
# The colours of MISP's TLP taxonomy, which MISP shows the tags in.
TLP_COLOUR = {"CLEAR": "#ffffff", "GREEN": "#339900", "AMBER": "#ffc000",
              "AMBER+STRICT": "#ffc000", "RED": "#cc0033"}  # fmt: skip
# How far a MISP event may travel (its `distribution`) for each TLP: "this community only" for
# everything but CLEAR, whose tag then says how much narrower it is. MISP's own feed setting
# (the distribution a CERT gives events from this feed) decides in the end; see docs/misp.md.
DISTRIBUTION_OF_TLP = {"CLEAR": "3", "GREEN": "1", "AMBER": "1", "AMBER+STRICT": "1", "RED": "1"}
THREAT_LEVEL = {"critical": "1", "high": "1", "medium": "2", "low": "3"}
ATTACK_GALAXY = "misp-galaxy:mitre-attack-pattern"
DISARM_GALAXY = "misp-galaxy:disarm-techniques"

# indicator type -> (MISP type, category, to_ids)
INDICATOR_TYPES: dict[str, tuple[str, str, bool]] = {
    "url": ("url", "Network activity", True),
    "domain": ("domain", "Network activity", True),
    "ipv4": ("ip-dst", "Network activity", True),
    "ipv6": ("ip-dst", "Network activity", True),
    "email": ("email-src", "Payload delivery", True),
    "md5": ("md5", "Payload delivery", True),
    "sha1": ("sha1", "Payload delivery", True),
    "sha256": ("sha256", "Payload delivery", True),
    "sha512": ("sha512", "Payload delivery", True),
    "cve": ("vulnerability", "External analysis", False),
    "asn": ("AS", "Network activity", False),
    "file-name": ("filename", "Payload delivery", True),
    "file-path": ("filename", "Payload delivery", True),
    "user-agent": ("user-agent", "Network activity", False),
    "mutex": ("mutex", "Artifacts dropped", True),
    "registry-key": ("regkey", "Persistence mechanism", True),
}
MEDIA_HASH_TYPES = {"md5": "md5", "sha1": "sha1", "sha256": "sha256"}  # others: text


def ulid_to_uuid(hub_id: str) -> str:
    """The hub id's 128 bits as a UUID (the canonical text); uuid_to_ulid undoes it."""
    value = 0
    for char in hub_id:
        value = value * 32 + _DIGIT[char]
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def uuid_to_ulid(text: str) -> str | None:
    """The hub id whose event has uuid `text`, or None when `text` is not a UUID."""
    try:
        value = uuid.UUID(text).int
    except ValueError:
        return None
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


@functools.lru_cache(maxsize=4096)
def _org_uuid(node_id: str) -> str:
    return str(uuid.uuid5(ORG_NAMESPACE, node_id))


def org_of(node_id: str) -> dict[str, str]:
    """The MISP organisation (Orgc) of a sending node: its id as name, a stable uuid."""
    return {"name": node_id, "uuid": _org_uuid(node_id)}


def machine_tag(predicate: str, value: object) -> str:
    """`alerthub:<predicate>="<value>"`, MISP's machine-tag form (quotes inside are dropped)."""
    return f'{NS}:{predicate}="{str(value).replace(chr(34), "")}"'


@dataclass(frozen=True, slots=True)
class FeedAlert:
    """What an event is made from: the stored alert as its sender wrote it (`doc`), and the
    hub's facts about it."""

    hub_id: str
    doc: dict[str, Any]
    sender: str
    status: str  # active | retracted | expired
    received_at: str
    changed_at: str  # the last update or retraction, else received_at
    # Unix seconds of the read the event is made for (None: long after the last change).
    read_at: int | None = None


def unix_seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def event_timestamp(alert: FeedAlert) -> int:
    """The event's `timestamp`: the Unix second of the alert's last change, but one less while
    that second lasts. MISP fetches an event again only for a later timestamp; a copy it took in
    the second of a change, which a second change in the same second would not move, is so
    always older than what the feed says once that second is over."""
    changed = max(unix_seconds(alert.changed_at), unix_seconds(alert.received_at))
    return changed - 1 if alert.read_at is not None and alert.read_at <= changed else changed


def event_of(alert: FeedAlert, with_attributes: bool = True) -> dict[str, Any]:
    """The MISP event (`{"Event": …}`) of `alert`. A retracted alert keeps its attributes,
    marked deleted and not for IDS, so that a MISP instance that fetched it before drops them.
    Without attributes (an empty list) for what needs only the event's head."""
    doc = alert.doc
    event_uuid = ulid_to_uuid(alert.hub_id)
    timestamp = str(event_timestamp(alert))
    retracted = alert.status == "retracted"
    attributes = (
        [_attribute(event_uuid, timestamp, retracted, *spec) for spec in _attribute_specs(doc)]
        if with_attributes
        else []
    )
    info = doc["title"] if not retracted else f"[RETRACTED] {doc['title']}"
    event = {
        "uuid": event_uuid,
        "info": info,
        "date": doc["observed_at"][:10],
        "timestamp": timestamp,
        "publish_timestamp": timestamp,
        "published": True,
        "threat_level_id": THREAT_LEVEL[doc["severity"]],
        "analysis": "2",
        "distribution": DISTRIBUTION_OF_TLP[doc["tlp"]],
        "Orgc": org_of(alert.sender),
        "Tag": event_tags(alert),
        "Attribute": attributes,
    }
    return {"Event": event}


def manifest_entry(event: dict[str, Any]) -> dict[str, Any]:
    """The event's entry in a feed's manifest.json (keyed there by its uuid), as MISP reads it."""
    body = event["Event"]
    return {
        "info": body["info"],
        "Orgc": body["Orgc"],
        "Tag": body["Tag"],
        "date": body["date"],
        "analysis": body["analysis"],
        "threat_level_id": body["threat_level_id"],
        "timestamp": body["timestamp"],
    }


def manifest_of(alert: FeedAlert) -> tuple[str, dict[str, Any]]:
    """(event uuid, manifest entry) of `alert`: manifest_entry(event_of(alert)) without
    making the attributes, which a manifest does not list."""
    body = event_of(alert, with_attributes=False)
    return body["Event"]["uuid"], manifest_entry(body)


def hashes_of(alert: FeedAlert) -> list[str]:
    """hash_lines(event_of(alert)) without making the event: none for a retracted alert."""
    if alert.status == "retracted":
        return []
    event_uuid = ulid_to_uuid(alert.hub_id)
    return [
        f"{hashlib.md5(_value_of(spec[0], spec[1]).encode('utf-8')).hexdigest()},{event_uuid}"
        for spec in _attribute_specs(alert.doc)
    ]


def hash_lines(event: dict[str, Any]) -> list[str]:
    """The event's lines of a feed's hashes.csv: `md5(value),event uuid` for each attribute
    not deleted, as PyMISP's feed generator writes them (no type made here has a `|`)."""
    body = event["Event"]
    return [
        f"{hashlib.md5(a['value'].encode('utf-8')).hexdigest()},{body['uuid']}"
        for a in body["Attribute"]
        if not a["deleted"]
    ]


def _tag(name: str, colour: str | None = None) -> dict[str, Any]:
    tag: dict[str, Any] = {"name": name}
    if colour is not None:
        tag["colour"] = colour
    return tag


def event_tags(alert: FeedAlert) -> list[dict[str, Any]]:
    doc = alert.doc
    share = doc.get("share") or {}
    names = [
        machine_tag("kind", doc["kind"]),
        machine_tag("status", alert.status),
        machine_tag("severity", doc["severity"]),
        machine_tag("alert-id", doc["id"]),
        machine_tag("hub-id", alert.hub_id),
        # MISP's `date` is a day; the hour travels here.
        machine_tag("observed-at", doc["observed_at"]),
    ]
    if "confidence" in doc:
        names.append(machine_tag("confidence", doc["confidence"]))
    if "valid_until" in doc:
        names.append(machine_tag("valid-until", doc["valid_until"]))
    for predicate, values in (
        ("target-country", doc.get("target_countries", ())),
        ("language", doc.get("languages", ())),
        ("recipient", share.get("recipients", ())),
        ("withhold-from", share.get("withhold_from", ())),
        ("sector", doc.get("sectors", ())),
        ("platform", doc.get("platforms", ())),
    ):
        names += [machine_tag(predicate, v) for v in values]
    names += list(doc.get("tags", ()))
    names += [galaxy_tag(ATTACK, t) for t in doc.get("attack_patterns", ())]
    names += [galaxy_tag(DISARM, t) for t in doc.get("disarm_techniques", ())]
    return [_tag(TLP_TAG[doc["tlp"]], TLP_COLOUR[doc["tlp"]])] + [_tag(n) for n in names]


# (alert field, its item, MISP type, category, to_ids, comment, attribute tags)
AttributeSpec = tuple[str, Any, str, str, bool, str, list[str]]


def _attribute_specs(doc: dict[str, Any]) -> Iterable[AttributeSpec]:
    if doc.get("summary"):
        yield ("summary", doc["summary"], "comment", "Other", False, "summary", [])
    for indicator in doc.get("indicators", ()):
        misp_type, category, to_ids = INDICATOR_TYPES[indicator["type"]]
        tags = [machine_tag("indicator", indicator["type"])]
        yield ("indicator", indicator, misp_type, category, to_ids, "", tags)
    if doc.get("narrative"):
        yield ("narrative", doc["narrative"], "text", "Other", False, "narrative", [])
    for n, claim in enumerate(doc.get("claims", ())):
        tags = [machine_tag("language", claim["language"])]
        if "verdict" in claim:
            tags.append(machine_tag("verdict", claim["verdict"]))
        yield ("claim", claim, "text", "Other", False, "claim", tags)
        if "fact_check_url" in claim:
            # A link of its own (a URL may be longer than the 255 characters of a MISP tag).
            link = {"of": n, "url": claim["fact_check_url"]}
            yield ("fact-check", link, "link", "External analysis", False,
                   f"fact-check of claim {n}", [machine_tag("of-claim", n)])  # fmt: skip
    for url in doc.get("urls", ()):
        yield ("url", url, "url", "Network activity", False, "seen spreading the narrative", [])
    for media in doc.get("media_hashes", ()):
        misp_type = MEDIA_HASH_TYPES.get(media["algorithm"], "text")
        tags = [machine_tag("algorithm", media["algorithm"])]
        yield ("media-hash", media, misp_type, "Payload delivery", False, "media hash", tags)
    for n, actor in enumerate(doc.get("actors", ())):
        tags = [machine_tag("platform", actor["platform"]), machine_tag("actor", n)]
        tags += [machine_tag(f"actor-{k}", actor[k]) for k in ("handle", "name") if k in actor]
        comment = f"actor on {actor['platform']}"
        yield ("actor", actor, "text", "Social network", False, comment, tags)
        if "url" in actor:
            link = {"of": n, "url": actor["url"]}
            yield ("actor-url", link, "link", "Social network", False, comment,
                   [machine_tag("actor", n)])  # fmt: skip
    for reference in doc.get("references", ()):
        title = reference.get("title", "")
        yield ("reference", reference, "link", "External analysis", False, title, [])


def _value_of(field: str, item: Any) -> str:
    if isinstance(item, str):
        return item
    if field == "claim":
        return item["text"]
    if field == "actor":
        return item.get("handle") or item.get("name") or item["platform"]
    return item["url"] if "url" in item else item["value"]


def _attribute(
    event_uuid: str,
    timestamp: str,
    deleted: bool,
    field: str,
    item: Any,
    misp_type: str,
    category: str,
    to_ids: bool,
    comment: str,
    tags: list[str],
) -> dict[str, Any]:
    # Named by what it says, not by its place: an update that reorders keeps the uuids.
    identity = f"{field}|{orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode()}"
    return {
        "uuid": str(uuid.uuid5(uuid.UUID(event_uuid), identity)),
        "type": misp_type,
        "category": category,
        "value": _value_of(field, item),
        "to_ids": to_ids and not deleted,
        "comment": comment,
        "distribution": "5",
        "timestamp": timestamp,
        "deleted": deleted,
        "disable_correlation": field in ("summary", "narrative", "claim"),
        "Tag": [_tag(machine_tag("field", field))] + [_tag(t) for t in tags],
    }

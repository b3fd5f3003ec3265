"""The attributes of a MISP event (and of its objects) as the alert's fields: by the
`alerthub:field` tag misp.py writes, else by MISP type. Pure; part of misp_import.py."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any

from hub.interop.misp_builder import PRIVATE_DISTRIBUTIONS, TAG_TLP, TLP_ORDER, Builder

_MACHINE = re.compile(r'^alerthub:([a-z-]+)="(.*)"$', re.S)
# Foreign attributes (no alerthub:field tag), by MISP type: the indicator type of a threat.
THREAT_TYPES = {"domain": "domain", "hostname": "domain", "url": "url", "email": "email",
                "email-src": "email", "email-dst": "email", "md5": "md5", "sha1": "sha1",
                "sha256": "sha256", "sha512": "sha512", "vulnerability": "cve", "AS": "asn",
                "filename": "file-name", "user-agent": "user-agent", "mutex": "mutex",
                "regkey": "registry-key"}  # fmt: skip
IP_TYPES = ("ip-dst", "ip-src")
MEDIA_TYPES = ("md5", "sha1", "sha256")


def tag_names(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """(name, pointer) of each tag in a `Tag` list (or MISP's `EventTag` form)."""
    if not isinstance(value, list):
        return
    for i, tag in enumerate(value):
        if isinstance(tag, dict) and isinstance(tag.get("Tag"), dict):
            tag = tag["Tag"]
        if isinstance(tag, dict) and isinstance(tag.get("name"), str):
            yield tag["name"], f"{pointer}/{i}/name"


def read_attributes(b: Builder, kind: str, tlp: str | None) -> None:
    """The event's attributes into the alert; those shared more narrowly than the event (a
    narrower tlp: tag, distribution 0 or 4, on them or their object) are skipped: the alert
    would share them as widely as the event."""
    for pointer, attribute in _attributes(b):
        narrower = _narrower(attribute, tlp)
        if narrower is not None:
            b.skip(pointer, f"{narrower}: post it in an event of its own")
        else:
            _attribute(b, kind, attribute, pointer)
    _claim_links(b)


def _narrower(value: dict[str, Any], tlp: str | None) -> str | None:
    """Why `value` (an attribute or object) is shared more narrowly than the event, or None."""
    private = PRIVATE_DISTRIBUTIONS.get(str(value.get("distribution")))
    if private is not None:
        return f"its distribution is {private}"
    for name, _ in tag_names(value.get("Tag"), ""):
        label = name.strip().lower()
        if label.startswith("tlp:"):
            found = TAG_TLP.get(label)
            if found is None or tlp is None or TLP_ORDER.index(found) > TLP_ORDER.index(tlp):
                return f"it is tagged {name}, narrower than the event's TLP:{tlp}"
    return None


def _attributes(b: Builder) -> Iterator[tuple[str, dict[str, Any]]]:
    """(pointer, attribute) of the event's attributes and its objects' attributes, but deleted
    ones and those of objects kept to an organisation or sharing group (skipped)."""
    for i, attribute in enumerate(_list(b.event.get("Attribute"))):
        if isinstance(attribute, dict) and not _deleted(attribute):
            yield f"/Attribute/{i}", attribute
    for j, obj in enumerate(_list(b.event.get("Object"))):
        private = (
            PRIVATE_DISTRIBUTIONS.get(str(obj.get("distribution")))
            if isinstance(obj, dict)
            else None
        )
        if private is not None:
            b.skip(f"/Object/{j}", f"its distribution is {private}: post it in an event of its own")
        elif isinstance(obj, dict) and not _deleted(obj):
            for i, attribute in enumerate(_list(obj.get("Attribute"))):
                if isinstance(attribute, dict) and not _deleted(attribute):
                    yield f"/Object/{j}/Attribute/{i}", attribute


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _deleted(value: dict[str, Any]) -> bool:
    return value.get("deleted") in (True, 1, "1", "true")


def _attribute(b: Builder, kind: str, attribute: dict[str, Any], pointer: str) -> None:
    value, misp_type = attribute.get("value"), attribute.get("type")
    if not isinstance(value, str) or not isinstance(misp_type, str):
        b.skip(pointer, "an attribute without a type and a text value")
        return
    tags = {}
    for name, _ in tag_names(attribute.get("Tag"), ""):
        match = _MACHINE.match(name)
        if match:
            tags.setdefault(match.group(1), match.group(2))
    where = f"{pointer}/value"
    own = tags.get("field")
    if own is not None:
        _own_attribute(b, own, value, tags, where, pointer)
        if own == "reference":
            b.alert["references"][-1].update(_titled(attribute))
    elif misp_type == "link":
        b.append("references", {"url": value, **_titled(attribute)}, where)
    elif misp_type == "comment" and "summary" not in b.alert:
        b.put("summary", value, where)
    elif kind == "threat" and misp_type in IP_TYPES:
        b.append("indicators", {"type": _ip_kind(value), "value": value}, where)
    elif kind == "threat" and misp_type in THREAT_TYPES:
        b.append("indicators", {"type": THREAT_TYPES[misp_type], "value": value}, where)
    elif kind == "disinformation" and misp_type == "url":
        b.append("urls", value, where)
    elif kind == "disinformation" and misp_type in MEDIA_TYPES:
        b.append("media_hashes", {"algorithm": misp_type, "value": value}, where)
    else:
        b.skip(pointer, f"a {misp_type} attribute has no field in a {kind} alert")


def _titled(attribute: dict[str, Any]) -> dict[str, str]:
    comment = attribute.get("comment")
    return {"title": comment[:300]} if isinstance(comment, str) and comment.strip() else {}


def _ip_kind(value: str) -> str:
    try:
        return "ipv6" if ipaddress.ip_address(value).version == 6 else "ipv4"
    except ValueError:
        return "ipv4"  # the schema then says what is wrong with it


def _own_attribute(
    b: Builder, own: str, value: str, tags: dict[str, str], where: str, pointer: str
) -> None:
    """An attribute misp.py wrote (alerthub:field names the alert field it came from)."""
    if own in ("summary", "narrative"):
        b.put(own, value, where)
    elif own == "indicator":
        b.append("indicators", {"type": tags.get("indicator", ""), "value": value}, where)
    elif own == "url":
        b.append("urls", value, where)
    elif own == "claim":
        claim = {"text": value, "language": tags.get("language", "")}
        if "verdict" in tags:
            claim["verdict"] = tags["verdict"]
        b.append("claims", claim, pointer)
    elif own == "fact-check":
        b.machine.setdefault("_fact_check", []).append(
            (f"{tags.get('of-claim', '')} {value}", where)
        )
    elif own == "media-hash":
        b.append("media_hashes", {"algorithm": tags.get("algorithm", ""), "value": value}, where)
    elif own == "actor":
        actor = {"platform": tags.get("platform", "")}
        actor.update({k: tags[f"actor-{k}"] for k in ("handle", "name") if f"actor-{k}" in tags})
        b.append("actors", actor, pointer)
        b.machine.setdefault("_actor_at", []).append(
            (tags.get("actor", ""), str(len(b.alert["actors"]) - 1))
        )
    elif own == "actor-url":
        b.machine.setdefault("_actor_url", []).append((f"{tags.get('actor', '')} {value}", where))
    elif own == "reference":
        b.append("references", {"url": value}, where)
    else:
        b.skip(pointer, f"alerthub:field={own} is not a field the hub reads")


def _claim_links(b: Builder) -> None:
    """Fact-check and actor URLs, which misp.py writes as link attributes of their own, back
    onto the claim or actor they belong to (by its place in the exported alert)."""
    for text, where in b.machine.get("_fact_check", []):
        index, _, url = text.partition(" ")
        claims = b.alert.get("claims", [])
        if index.isdigit() and int(index) < len(claims):
            claims[int(index)]["fact_check_url"] = url
        else:
            b.skip(where, "a fact-check link whose claim is not in the event")
    places = {given: int(at) for given, at in b.machine.get("_actor_at", [])}
    for text, where in b.machine.get("_actor_url", []):
        index, _, url = text.partition(" ")
        actors = b.alert.get("actors", [])
        if index in places:
            actors[places[index]]["url"] = url
        else:
            b.skip(where, "an actor link whose actor is not in the event")

"""MISP events as alerts: the reverse of misp.py, for `POST /v1/imports/misp`. Pure.

The event's uuid is the alert's id and its `timestamp` the revision, so a MISP edit of the event
posted again is an update. Its sharing is never widened: the TLP is the narrower of its `tlp:` tag
and what its `distribution` allows, and an event that is for its organisation only (0), for a
sharing group (4), or marked in two ways at once, is refused with a pointer into the MISP JSON.
What the alert has no field for (a MISP type it does not know, a taxonomy tag) is reported as
skipped, never guessed."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from hub.errors import HubError, MalformedJson, ProblemDetail, ValidationFailed
from hub.interop.galaxies import ATTACK, DISARM, technique_of
from hub.interop.misp import ATTACK_GALAXY, DISARM_GALAXY

MAX_EVENTS = 500
MAX_TITLE = 300
TAG_TLP = {"tlp:clear": "CLEAR", "tlp:white": "CLEAR", "tlp:green": "GREEN", "tlp:amber": "AMBER",
           "tlp:amber+strict": "AMBER+STRICT", "tlp:red": "RED"}  # fmt: skip
TLP_ORDER = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
# The widest TLP each MISP distribution allows: "this community" and "connected communities" are
# the hub's community at most (GREEN); "all communities" may be CLEAR.
DISTRIBUTION_CAP = {1: "GREEN", 2: "GREEN", 3: "CLEAR"}
DISTRIBUTION_REFUSED = {
    0: "distribution 0 keeps the event in your organisation; posting it would share it beyond "
    "that. Set distribution 1, 2 or 3 and a tlp: tag",
    4: "distribution 4 shares the event with a MISP sharing group, which the hub cannot map to "
    "its nodes. Use tlp:red with alerthub:recipient tags naming the nodes instead",
}
SEVERITY_OF_LEVEL = {1: "high", 2: "medium", 3: "low", 4: "medium"}
_MACHINE = re.compile(r'^alerthub:([a-z-]+)="(.*)"$', re.S)
_GALAXY = re.compile(r'^(misp-galaxy:[a-z-]+)="(.*)"$', re.S)
_SLUG = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")
ATTACK_GALAXIES = {ATTACK_GALAXY, "misp-galaxy:mitre-enterprise-attack-attack-pattern"}
LIST_TAGS = {"target-country": "target_countries", "language": "languages",
             "sector": "sectors", "platform": "platforms"}  # fmt: skip
# Foreign attributes (no alerthub:field tag), by MISP type: the indicator type of a threat.
THREAT_TYPES = {"domain": "domain", "hostname": "domain", "url": "url", "email": "email",
                "email-src": "email", "email-dst": "email", "md5": "md5", "sha1": "sha1",
                "sha256": "sha256", "sha512": "sha512", "vulnerability": "cve", "AS": "asn",
                "filename": "file-name", "user-agent": "user-agent", "mutex": "mutex",
                "regkey": "registry-key"}  # fmt: skip
IP_TYPES = ("ip-dst", "ip-src")
MEDIA_TYPES = ("md5", "sha1", "sha256")


def events_of(body: Any) -> list[tuple[str, Any]]:
    """(JSON pointer, event) of each event in a posted body: one event (`{"Event": …}`, or the
    event's own object), a list of them, or MISP's REST answer `{"response": [...]}`."""
    if isinstance(body, dict) and "response" in body and "Event" not in body:
        found = [(f"/response/{i}", e) for i, e in enumerate(_listed(body["response"]))]
    elif isinstance(body, list):
        found = [(f"/{i}", e) for i, e in enumerate(body)]
    elif isinstance(body, dict):
        found = [("", body)]
    else:
        raise MalformedJson("the body must be a MISP event, a list of events or {response: [...]}")
    if not found:
        raise ValidationFailed(
            "no MISP event in the body", [ProblemDetail("", "minItems", "send at least one event")]
        )
    if len(found) > MAX_EVENTS:
        raise ValidationFailed(
            f"{len(found)} events; at most {MAX_EVENTS} in one request",
            [ProblemDetail("", "maxItems", f"send at most {MAX_EVENTS} events")],
        )
    return [(p + "/Event", e["Event"]) if _wrapped(e) else (p, e) for p, e in found]


def _listed(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationFailed(
            "response must be a list",
            [ProblemDetail("/response", "type", "must be a list of events")],
        )
    return value


def _wrapped(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"Event"}


@dataclass
class Converted:
    """An event as an alert, with where each part of the alert came from in the MISP JSON."""

    alert: dict[str, Any]
    base: str
    origin: dict[str, str] = field(default_factory=dict)  # alert pointer -> MISP pointer
    skipped: list[dict[str, str]] = field(default_factory=list)

    def pointer(self, alert_pointer: str) -> str:
        """The MISP pointer behind an alert pointer: its longest known prefix, else the event."""
        probe = alert_pointer
        while probe:
            if probe in self.origin:
                return self.origin[probe]
            probe = probe.rsplit("/", 1)[0]
        return self.base

    def refusal(self, error: HubError) -> dict[str, object]:
        """The error body with its pointers moved into the MISP JSON."""
        body = error.body()
        if isinstance(body.get("details"), list):
            body["details"] = [
                {**d, "pointer": self.pointer(d["pointer"])} for d in body["details"]
            ]
        return body


class _Builder:
    def __init__(self, event: dict[str, Any], base: str) -> None:
        self.event, self.base = event, base
        self.problems: list[ProblemDetail] = []
        self.alert: dict[str, Any] = {}
        self.out = Converted(self.alert, base)
        self.machine: dict[str, list[tuple[str, str]]] = {}  # predicate -> [(value, pointer)]
        self.tlp_tags: list[tuple[str, str]] = []

    def problem(self, pointer: str, rule: str, message: str) -> None:
        self.problems.append(ProblemDetail(self.base + pointer, rule, message))

    def skip(self, pointer: str, reason: str) -> None:
        self.out.skipped.append({"pointer": self.base + pointer, "reason": reason})

    def put(self, name: str, value: Any, pointer: str) -> None:
        self.alert[name] = value
        self.out.origin[f"/{name}"] = self.base + pointer

    def append(self, name: str, value: Any, pointer: str) -> None:
        items = self.alert.setdefault(name, [])
        if value in items:
            self.skip(pointer, f"the same {name[:-1].replace('_', ' ')} is given earlier")
            return
        self.out.origin[f"/{name}/{len(items)}"] = self.base + pointer
        self.out.origin.setdefault(f"/{name}", self.base + pointer)
        items.append(value)


def alert_of(event: Any, base: str) -> Converted:
    """The alert of one MISP event found at `base`; ValidationFailed (pointers into the MISP
    JSON) for an event that cannot be mapped without widening or guessing."""
    if not isinstance(event, dict):
        raise ValidationFailed(
            "not a MISP event", [ProblemDetail(base, "type", "must be a MISP event object")]
        )
    b = _Builder(event, base)
    for name in ("Attribute", "Object", "Tag", "EventTag"):
        if event.get(name) is not None and not isinstance(event[name], list):
            b.problem(f"/{name}", "type", "must be a list")
    _envelope(b)
    _read_tags(b)
    kind = _kind(b)
    if kind is not None:
        b.put("kind", kind, "/Tag")
        for pointer, attribute in _attributes(event):
            _attribute(b, kind, attribute, pointer)
        _claim_links(b)
    _sharing(b)
    if b.problems:
        raise ValidationFailed(f"{len(b.problems)} problem(s) in the MISP event", b.problems)
    return b.out


def _envelope(b: _Builder) -> None:
    event = b.event
    raw_uuid = event.get("uuid")
    try:
        b.put("id", str(uuid.UUID(raw_uuid)) if isinstance(raw_uuid, str) else None, "/uuid")
        if b.alert["id"] is None:
            raise ValueError
    except ValueError:
        b.problem("/uuid", "required", "the event needs its uuid (it becomes the alert's id)")
    info = event.get("info")
    if not isinstance(info, str) or not info.strip():
        b.problem("/info", "required", "the event needs an info line (it becomes the title)")
    else:
        b.put("title", info if len(info) <= MAX_TITLE else info[: MAX_TITLE - 1] + "…", "/info")
    try:
        day = date.fromisoformat(str(event.get("date")))
        b.put("observed_at", f"{day.isoformat()}T00:00:00Z", "/date")
    except ValueError:
        b.problem("/date", "format", "the event needs a date such as 2026-11-21")
    stamp = event.get("timestamp")
    if stamp is not None:
        if str(stamp).isdigit() and 1 <= int(stamp) <= 2**31 - 1:
            b.put("revision", int(stamp), "/timestamp")
        else:
            b.problem("/timestamp", "format", "must be Unix seconds (it becomes the revision)")
    level = event.get("threat_level_id")
    if level is not None and str(level) in ("1", "2", "3", "4"):
        b.put("severity", SEVERITY_OF_LEVEL[int(level)], "/threat_level_id")
    else:
        b.put("severity", "medium", "/threat_level_id")


def _tags(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """(name, pointer) of each tag in a `Tag` list (or MISP's `EventTag` form)."""
    if not isinstance(value, list):
        return
    for i, tag in enumerate(value):
        if isinstance(tag, dict) and isinstance(tag.get("Tag"), dict):
            tag = tag["Tag"]
        if isinstance(tag, dict) and isinstance(tag.get("name"), str):
            yield tag["name"], f"{pointer}/{i}/name"


def _read_tags(b: _Builder) -> None:
    tags = list(_tags(b.event.get("Tag"), "/Tag")) + list(
        _tags(b.event.get("EventTag"), "/EventTag")
    )
    for name, pointer in tags:
        lowered = name.strip().lower()
        machine, galaxy = _MACHINE.match(name.strip()), _GALAXY.match(name.strip())
        if lowered.startswith("tlp:"):
            if lowered not in TAG_TLP:
                b.problem(
                    pointer,
                    "tlp",
                    f"{name} is not a TLP 2.0 label the hub knows "
                    "(clear, green, amber, amber+strict, red)",
                )
            else:
                b.tlp_tags.append((TAG_TLP[lowered], pointer))
        elif machine:
            b.machine.setdefault(machine.group(1), []).append((machine.group(2), pointer))
        elif galaxy and galaxy.group(1) in ATTACK_GALAXIES | {DISARM_GALAXY}:
            disarm = galaxy.group(1) == DISARM_GALAXY
            technique = technique_of(DISARM if disarm else ATTACK, galaxy.group(2))
            if technique is not None:
                b.append("disarm_techniques" if disarm else "attack_patterns", technique, pointer)
            else:
                b.skip(pointer, "a galaxy tag that names no technique the hub knows")
        elif _SLUG.match(name) and len(name) <= 64:
            b.append("tags", name, pointer)
        else:
            b.skip(pointer, "a tag the alert has no field for")
    for predicate, values in b.machine.items():
        _machine_tag(b, predicate, values)


def _machine_tag(b: _Builder, predicate: str, values: list[tuple[str, str]]) -> None:
    value, pointer = values[0]
    if predicate in LIST_TAGS:
        for v, p in values:
            b.append(LIST_TAGS[predicate], v, p)
    elif predicate in ("recipient", "withhold-from"):
        key = "recipients" if predicate == "recipient" else "withhold_from"
        share = b.alert.setdefault("share", {})
        share[key] = [v for v, _ in values]
        for i, (_, p) in enumerate(values):
            b.out.origin[f"/share/{key}/{i}"] = b.base + p
    elif predicate == "severity":
        b.put("severity", value, pointer)
    elif predicate == "confidence":
        b.put("confidence", int(value) if value.isdigit() else value, pointer)
    elif predicate == "valid-until":
        b.put("valid_until", value, pointer)
    elif predicate == "observed-at":
        b.put("observed_at", value, pointer)
    elif predicate == "status" and value == "retracted":
        b.problem(
            pointer,
            "status",
            "the event is marked retracted: retract the alert with "
            "POST /v1/alerts/{hub_id}/retract",
        )
    elif predicate not in ("kind", "status", "alert-id", "hub-id"):
        b.skip(pointer, f"alerthub:{predicate} is not a tag the hub reads")


def _kind(b: _Builder) -> str | None:
    given = b.machine.get("kind")
    if given:
        if given[0][0] not in ("threat", "disinformation"):
            b.problem(given[0][1], "enum", "alerthub:kind must be threat or disinformation")
            return None
        return given[0][0]
    if "disarm_techniques" in b.alert:
        return "disinformation"
    return "threat"


def _sharing(b: _Builder) -> None:
    distribution = b.event.get("distribution")
    cap: str | None = None
    if distribution is not None:
        number = int(distribution) if str(distribution).isdigit() else -1
        if number in DISTRIBUTION_REFUSED:
            b.problem("/distribution", "distribution", DISTRIBUTION_REFUSED[number])
        elif number not in DISTRIBUTION_CAP:
            b.problem("/distribution", "enum", "must be 1, 2 or 3 (0 and 4 are refused)")
        else:
            cap = DISTRIBUTION_CAP[number]
    labels = {tlp for tlp, _ in b.tlp_tags}
    if len(labels) > 1:
        b.problem(
            b.tlp_tags[1][1], "tlp", f"two TLP labels ({', '.join(sorted(labels))}); keep one"
        )
        return
    if not labels and cap is None:
        if distribution is None:
            b.problem("/Tag", "tlp", "the event needs a tlp: tag or a distribution (1, 2 or 3)")
        return
    tagged = labels.pop() if labels else None
    chosen = max((t for t in (tagged, cap) if t is not None), key=TLP_ORDER.index)
    b.put("tlp", chosen, b.tlp_tags[0][1] if b.tlp_tags else "/distribution")
    if chosen == "RED" and not b.alert.get("share", {}).get("recipients"):
        b.problem(
            "/Tag",
            "recipients",
            'a tlp:red event needs alerthub:recipient="<node id or country>" tags '
            "naming who may read it",
        )


def _attributes(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(pointer, attribute) of the event's attributes and its objects' attributes, but deleted."""
    for i, attribute in enumerate(_list(event.get("Attribute"))):
        if isinstance(attribute, dict) and not _deleted(attribute):
            yield f"/Attribute/{i}", attribute
    for j, obj in enumerate(_list(event.get("Object"))):
        if isinstance(obj, dict) and not _deleted(obj):
            for i, attribute in enumerate(_list(obj.get("Attribute"))):
                if isinstance(attribute, dict) and not _deleted(attribute):
                    yield f"/Object/{j}/Attribute/{i}", attribute


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _deleted(value: dict[str, Any]) -> bool:
    return value.get("deleted") in (True, 1, "1", "true")


def _attribute(b: _Builder, kind: str, attribute: dict[str, Any], pointer: str) -> None:
    value, misp_type = attribute.get("value"), attribute.get("type")
    if not isinstance(value, str) or not isinstance(misp_type, str):
        b.skip(pointer, "an attribute without a type and a text value")
        return
    tags = {}
    for name, _ in _tags(attribute.get("Tag"), ""):
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
    b: _Builder, own: str, value: str, tags: dict[str, str], where: str, pointer: str
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


def _claim_links(b: _Builder) -> None:
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

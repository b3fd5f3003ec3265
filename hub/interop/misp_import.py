"""MISP events as alerts: the reverse of misp.py, for `POST /v1/imports/misp`. Pure.

The event's uuid is the alert's id and its `timestamp` the revision, so a MISP edit of the event
posted again is an update. Its sharing is never widened: the TLP is the narrower of its `tlp:` tag
and what its `distribution` allows, and an event that is for its organisation only (0), for a
sharing group (4), or marked in two ways at once, is refused with a pointer into the MISP JSON.
What the alert has no field for (a MISP type it does not know, a taxonomy tag) is reported as
skipped, never guessed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

from hub.errors import MalformedJson, ProblemDetail, ValidationFailed
from hub.interop.galaxies import ATTACK, DISARM, technique_of
from hub.interop.misp import ATTACK_GALAXY, DISARM_GALAXY
from hub.interop.misp_attributes import read_attributes, tag_names
from hub.interop.misp_builder import TAG_TLP, TLP_ORDER, Builder, Converted

MAX_EVENTS = 500
MAX_TITLE = 300
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


def alert_of(event: Any, base: str) -> Converted:
    """The alert of one MISP event found at `base`; ValidationFailed (pointers into the MISP
    JSON) for an event that cannot be mapped without widening or guessing."""
    if not isinstance(event, dict):
        raise ValidationFailed(
            "not a MISP event", [ProblemDetail(base, "type", "must be a MISP event object")]
        )
    b = Builder(event, base)
    for name in ("Attribute", "Object", "Tag", "EventTag"):
        if event.get(name) is not None and not isinstance(event[name], list):
            b.problem(f"/{name}", "type", "must be a list")
    _envelope(b)
    _read_tags(b)
    kind = _kind(b)
    _sharing(b)
    if kind is not None:
        b.put("kind", kind, "/Tag")
        # After the sharing: an attribute marked narrower than the event is left out.
        read_attributes(b, kind, b.alert.get("tlp"))
    if b.problems:
        raise ValidationFailed(f"{len(b.problems)} problem(s) in the MISP event", b.problems)
    return b.out


def _envelope(b: Builder) -> None:
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


def _read_tags(b: Builder) -> None:
    tags = list(tag_names(b.event.get("Tag"), "/Tag")) + list(
        tag_names(b.event.get("EventTag"), "/EventTag")
    )
    named = {name for name, _ in tags}
    tags += [(n, p) for n, p in _galaxy_tags(b.event) if n not in named]
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


def _galaxy_tags(event: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The tag names of the galaxy clusters MISP's REST answers list beside the tags."""
    galaxies = event.get("Galaxy")
    for i, galaxy in enumerate(galaxies if isinstance(galaxies, list) else []):
        clusters = galaxy.get("GalaxyCluster") if isinstance(galaxy, dict) else None
        for j, cluster in enumerate(clusters if isinstance(clusters, list) else []):
            if isinstance(cluster, dict) and isinstance(cluster.get("tag_name"), str):
                yield cluster["tag_name"], f"/Galaxy/{i}/GalaxyCluster/{j}/tag_name"


def _machine_tag(b: Builder, predicate: str, values: list[tuple[str, str]]) -> None:
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


def _kind(b: Builder) -> str | None:
    given = b.machine.get("kind")
    if given:
        if given[0][0] not in ("threat", "disinformation"):
            b.problem(given[0][1], "enum", "alerthub:kind must be threat or disinformation")
            return None
        return given[0][0]
    if "disarm_techniques" in b.alert:
        return "disinformation"
    return "threat"


def _sharing(b: Builder) -> None:
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

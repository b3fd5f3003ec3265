"""What misp_import.py builds an alert in: the alert, where each of its parts came from in the
MISP JSON (so that a refusal points there), and what was skipped. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.errors import HubError, ProblemDetail

TAG_TLP = {"tlp:clear": "CLEAR", "tlp:white": "CLEAR", "tlp:green": "GREEN", "tlp:amber": "AMBER",
           "tlp:amber+strict": "AMBER+STRICT", "tlp:red": "RED"}  # fmt: skip
TLP_ORDER = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
# MISP distributions that keep an event, object or attribute from everyone the hub reaches.
PRIVATE_DISTRIBUTIONS = {"0": "your organisation only", "4": "a sharing group"}


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


class Builder:
    """An alert being made from one MISP event: what was put where, skipped or refused."""

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
        # The list as a whole (too many items, none): where its items come from, e.g. /Attribute.
        self.out.origin.setdefault(f"/{name}", self.base + "/" + pointer.split("/")[1])
        items.append(value)

"""Subscription filters: does this alert match what the subscriber asked for? Pure.

Empty lists match everything (API.md). The sharing policy is a separate question (policy.py):
a match here never lets an alert through that the policy withholds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What a filter looks at, taken from the stored alert document."""

    kind: str
    severity: str
    source_country: str | None
    target_countries: frozenset[str]
    tags: frozenset[str]
    languages: frozenset[str]

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AlertFacts:
        return cls(
            kind=doc.get("kind", ""),
            severity=doc.get("severity", "low"),
            source_country=doc.get("source_country"),
            target_countries=frozenset(doc.get("target_countries") or ()),
            tags=frozenset(doc.get("tags") or ()),
            languages=frozenset(lang.lower() for lang in doc.get("languages") or ()),
        )


@dataclass(frozen=True, slots=True)
class SubscriptionFilter:
    kinds: frozenset[str] = frozenset()
    target_countries: frozenset[str] = frozenset()
    source_countries: frozenset[str] = frozenset()
    min_severity: str | None = None
    tags_any: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SubscriptionFilter:
        """From a schema-valid filter object (or None: match everything)."""
        data = data or {}
        return cls(
            kinds=frozenset(data.get("kinds") or ()),
            target_countries=frozenset(data.get("target_countries") or ()),
            source_countries=frozenset(data.get("source_countries") or ()),
            min_severity=data.get("min_severity"),
            tags_any=frozenset(data.get("tags_any") or ()),
            languages=frozenset(data.get("languages") or ()),
        )

    def as_json(self) -> dict[str, object]:
        return {
            "kinds": sorted(self.kinds),
            "target_countries": sorted(self.target_countries),
            "source_countries": sorted(self.source_countries),
            "min_severity": self.min_severity,
            "tags_any": sorted(self.tags_any),
            "languages": sorted(self.languages),
        }

    def mismatch(self, alert: AlertFacts) -> str | None:
        """None when the alert matches; else the first reason it does not, in words."""
        if self.kinds and alert.kind not in self.kinds:
            return f"kind {alert.kind} is not among {_listed(self.kinds)}"
        if self.min_severity is not None and SEVERITY_RANK.get(
            alert.severity, 0
        ) < SEVERITY_RANK.get(self.min_severity, 0):
            return f"severity {alert.severity} is below {self.min_severity}"
        if self.source_countries and alert.source_country not in self.source_countries:
            wanted = _listed(self.source_countries)
            return f"source country {alert.source_country} is not among {wanted}"
        if self.target_countries and not (alert.target_countries & self.target_countries):
            return f"no target country among {_listed(self.target_countries)}"
        if self.tags_any and not (alert.tags & self.tags_any):
            return f"no tag among {_listed(self.tags_any)}"
        if self.languages and not any(
            language_matches(wanted, alert.languages) for wanted in self.languages
        ):
            return f"no language among {_listed(self.languages)}"
        return None

    def matches(self, alert: AlertFacts) -> bool:
        return self.mismatch(alert) is None


def language_matches(wanted: str, languages: frozenset[str]) -> bool:
    """BCP 47 prefix match (RFC 4647 basic filtering): "sr" matches "sr-Cyrl" and "sr-Latn",
    "sr-Latn" matches only itself and its subtags; case does not matter."""
    wanted = wanted.lower()
    return any(lang == wanted or lang.startswith(wanted + "-") for lang in languages)


def _listed(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))

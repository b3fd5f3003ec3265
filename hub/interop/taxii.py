"""TAXII 2.1, read-only: the resources, media types, `added_after` times, `match[…]` filters and
error messages the spec defines. Pure; hub/interop/collections.py reads the objects and
hub/api/taxii.py serves them.

Every object of a collection was added with the alert version it belongs to, at the time of the
stream entry (event log or subscription feed) that logged that version. `date_added` is that
entry's id written as a time with nine fraction digits: milliseconds, then the entry's sequence
number within its millisecond. It is unique and ordered like the entries, so a client that sends
back the last page's X-TAXII-Date-Added-Last as `added_after` gets nothing twice and misses
nothing, even when many entries share a millisecond.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.errors import ProblemDetail

TAXII_MEDIA = "application/taxii+json;version=2.1"
STIX_MEDIA = "application/stix+json;version=2.1"
API_ROOT = "alerthub"
VISIBLE = "visible"
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_SEQ = 999_999  # sequence numbers that fit the six fraction digits after the milliseconds
EMPTY_TIME = "1970-01-01T00:00:00.000000000Z"
MATCH_KEYS = ("match[id]", "match[type]", "match[version]", "match[spec_version]")
_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)
_ENTRY = re.compile(r"^(\d{1,15})-(\d{1,20})$")
_STIX_ID = re.compile(
    r"^[a-z0-9][a-z0-9-]{0,249}--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
_STIX_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{0,249}$")


def acceptable(accept: str | None) -> bool:
    """Whether an Accept header lets the hub answer with TAXII 2.1 JSON. A missing header, `*/*`
    and `application/*` do; so does `application/taxii+json` with no version or version 2.1."""
    if accept is None or not accept.strip():
        return True
    for item in accept.split(","):
        media, *params = [p.strip().lower() for p in item.split(";")]
        settings = dict(p.partition("=")[::2] for p in params)
        if settings.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if media in ("*/*", "application/*"):
            return True
        if media == "application/taxii+json" and settings.get("version", "2.1") == "2.1":
            return True
    return False


def date_added(entry_id: str) -> str:
    """The `date_added` of the objects logged by stream entry `entry_id` ("ms-seq")."""
    ms_text, _, seq_text = entry_id.partition("-")
    ms, seq = int(ms_text), min(int(seq_text), MAX_SEQ)
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}{seq:06d}Z"


def stream_position(added_after: str) -> str | None:
    """The stream id after which entries were added after `added_after` (an RFC 3339 time with
    up to nine fraction digits), or None when it is not such a time."""
    parsed = _parse_time(added_after)
    if parsed is None:
        return None
    moment, fraction = parsed
    digits = fraction.ljust(9, "0")
    ms = int(moment.timestamp()) * 1000 + int(digits[:3])
    if ms < 0:
        return "0-0"
    return f"{ms}-{int(digits[3:])}"


def is_entry_id(text: str) -> bool:
    found = _ENTRY.match(text)
    return found is not None and int(found.group(2)) < 2**64


@dataclass(frozen=True, slots=True)
class Match:
    """The `match[…]` filters of a request; an empty tuple matches everything."""

    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: tuple[str, ...] = ("last",)
    spec_versions: tuple[str, ...] = ()

    def selects(self, obj: dict[str, Any], added: str) -> bool:
        if self.ids and obj["id"] not in self.ids:
            return False
        if self.types and obj["type"] not in self.types:
            return False
        if self.spec_versions and obj.get("spec_version", "2.1") not in self.spec_versions:
            return False
        # The hub holds one version of each object, its latest: first, last and all are it.
        wanted = set(self.versions) - {"first", "last", "all"}
        if wanted and wanted == set(self.versions):
            return object_version(obj, added) in {_normal_time(v) for v in wanted}
        return True


def parse_match(query: Any, problems: list[ProblemDetail]) -> Match:
    """The `match[…]` parameters of `query` (a multidict); each bad value a problem."""
    values: dict[str, tuple[str, ...]] = {}
    for key in MATCH_KEYS:
        given = query.get(key)
        if given is None:
            continue
        items = tuple(v.strip() for v in given.split(",") if v.strip())
        if not items:
            problems.append(ProblemDetail(f"/{key}", "format", "must list at least one value"))
            continue
        values[key] = items
    ids = values.get("match[id]", ())
    for value in ids:
        if not _STIX_ID.match(value):
            problems.append(ProblemDetail("/match[id]", "format", f"{value[:80]!r} is no STIX id"))
    types = values.get("match[type]", ())
    for value in types:
        if not _STIX_TYPE.match(value):
            problems.append(
                ProblemDetail("/match[type]", "format", f"{value[:80]!r} is no STIX type")
            )
    versions = values.get("match[version]", ("last",))
    for value in versions:
        if value not in ("first", "last", "all") and _normal_time(value) is None:
            problems.append(
                ProblemDetail(
                    "/match[version]",
                    "format",
                    "must be first, last, all or an RFC 3339 time",
                )
            )
    return Match(ids, types, versions, values.get("match[spec_version]", ()))


def _normal_time(text: str) -> str | None:
    """An RFC 3339 time as STIX writes it (UTC, milliseconds), or None."""
    parsed = _parse_time(text)
    if parsed is None:
        return None
    moment, fraction = parsed
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + fraction.ljust(3, "0")[:3] + "Z"


def _parse_time(text: str) -> tuple[datetime, str] | None:
    """An RFC 3339 time with up to nine fraction digits: the moment to the second (datetime
    holds only six digits) and the fraction's digits as written; None when it is not one."""
    found = _TIME.match(text.strip())
    if found is None:
        return None
    whole, fraction, zone = found.groups()
    try:
        moment = datetime.fromisoformat(f"{whole}{'+00:00' if zone.upper() == 'Z' else zone}")
    except ValueError:
        return None
    return moment, fraction or ""


def object_version(obj: dict[str, Any], added: str) -> str:
    """An object's version as a manifest shows it: `modified`, else `created`, else (an
    observable, which has neither) the time it was added."""
    return obj.get("modified") or obj.get("created") or added


def envelope(objects: list[dict[str, Any]], more: bool, next_token: str | None) -> dict:
    out: dict[str, Any] = {"more": more}
    if more and next_token:
        out["next"] = next_token
    if objects:
        out["objects"] = objects
    return out


def manifest_record(obj: dict[str, Any], added: str) -> dict[str, str]:
    return {
        "id": obj["id"],
        "date_added": added,
        "version": object_version(obj, added),
        "media_type": STIX_MEDIA,
    }


def discovery(base: str) -> dict[str, Any]:
    root = f"{base}/taxii2/{API_ROOT}/"
    return {
        "title": "alerthub",
        "description": "Threat and disinformation alerts shared by the region's nodes, as STIX "
        "2.1, under each alert's TLP and sharing instructions.",
        "default": root,
        "api_roots": [root],
    }


def api_root(max_content_length: int) -> dict[str, Any]:
    return {
        "title": "alerthub",
        "description": "Read-only: the alerts this node may see, and its pull subscriptions.",
        "versions": [TAXII_MEDIA],
        "max_content_length": max_content_length,
    }


def collection(collection_id: str, title: str, description: str) -> dict[str, Any]:
    return {
        "id": collection_id,
        "title": title,
        "description": description,
        "can_read": True,
        "can_write": False,
        "media_types": [STIX_MEDIA],
    }


def error_message(status: int, code: str, message: str, details: list[dict] | None) -> dict:
    """A TAXII error message (section 3.6.1) of a hub error."""
    out: dict[str, Any] = {
        "title": code.replace("_", " "),
        "description": message,
        "error_code": code,
        "http_status": str(status),
    }
    if details:
        out["details"] = {"problems": details}
    return out

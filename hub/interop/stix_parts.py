"""The parts every STIX object of the mapping (stix.py) is made of: deterministic ids, STIX times,
the OASIS TLP 2.0 marking definitions and STIX patterns. Pure."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

# The namespace of every id the mapping makes (uuid5 of a DNS name the hub's ids hang under).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "stix.alerthub.invalid")

_NAMESPACE_BYTES = NAMESPACE.bytes

TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"

TLP_IDS = {
    "CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "RED": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}

TLP_CREATED = "2022-10-01T00:00:00.000Z"

HASH_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}

# STIX observable patterns of the indicator types that have one (file-path is split below).
PATTERN_PATHS = {
    "url": "url:value",
    "domain": "domain-name:value",
    "ipv4": "ipv4-addr:value",
    "ipv6": "ipv6-addr:value",
    "email": "email-addr:value",
    "md5": "file:hashes.'MD5'",
    "sha1": "file:hashes.'SHA-1'",
    "sha256": "file:hashes.'SHA-256'",
    "sha512": "file:hashes.'SHA-512'",
    "file-name": "file:name",
    "user-agent": "network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'",
    "mutex": "mutex:name",
    "registry-key": "windows-registry-key:key",
}


@lru_cache(maxsize=4096)
def stix_time(text: str) -> str:
    """An RFC 3339 time as STIX writes it: UTC, `Z`, milliseconds."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def stix_id(kind: str, *parts: str) -> str:
    """`kind--` and the UUIDv5 (RFC 4122, section 4.3) of the parts joined by "/" in NAMESPACE;
    the same as uuid.uuid5, without building UUID objects (the TAXII read makes many)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "/".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{kind}--{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def report_id(hub_id: str) -> str:
    return stix_id("report", hub_id, "report")


def identity_id(node_id: str) -> str:
    return stix_id("identity", "node", node_id)


@lru_cache(maxsize=8)
def tlp_marking(tlp: str) -> dict[str, Any]:
    """The OASIS TLP 2.0 marking-definition object of `tlp` (CLEAR … RED). Cached: the same
    dict each time, as are the sender's objects in `alert_objects`; copy before changing one."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP_IDS[tlp],
        "created": TLP_CREATED,
        "name": f"TLP:{tlp}",
        "extensions": {
            TLP_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": tlp.lower()}
        },
    }


def pattern_literal(value: str) -> str:
    """A STIX pattern string literal: quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def indicator_pattern(kind: str, value: str) -> str | None:
    """The STIX pattern of one hub indicator; None for a type that is not an observable
    (cve becomes a vulnerability) or an asn that is not a number."""
    if kind == "asn":
        digits = value.upper().removeprefix("AS")
        return f"[autonomous-system:number = {int(digits)}]" if digits.isdigit() else None
    if kind == "file-path":
        directory, _, name = value.replace("\\", "/").rpartition("/")
        if not directory or not name:
            return f"[file:name = {pattern_literal(value)}]"
        original_dir = value[: len(directory)]
        return (
            f"[file:parent_directory_ref.path = {pattern_literal(original_dir)}"
            f" AND file:name = {pattern_literal(name)}]"
        )
    path = PATTERN_PATHS.get(kind)
    if path is None:
        return None
    if kind in HASH_NAMES:
        value = value.lower()
    return f"[{path} = {pattern_literal(value)}]"


def fact_check_note(check: dict[str, Any], report: str) -> dict[str, Any]:
    """The properties of the `note` a fact-check (ClaimReview fields) is, on `report`: the claim
    reviewed, the verdict and the summary as its content, the verdict in its abstract, the
    article as its external reference."""
    rating = check.get("rating") or {}
    verdict = rating.get("alternate_name", "") if isinstance(rating, dict) else str(rating)
    content = f"{check.get('claim_reviewed', '')}\n\nVerdict: {verdict}"
    if check.get("summary"):
        content += f"\n\n{check['summary']}"
    labels = ["fact-check"]
    if check.get("language"):
        labels.append(f"language:{check['language']}")
    return {
        "abstract": f"Fact-check: {verdict}"[:250],
        "content": content,
        "labels": labels,
        "object_refs": [report],
        "external_references": [{"source_name": "fact-check", "url": check["url"]}],
    }

"""Canonical forms of alert content, for deduplication and for linking near duplicates.

Pure functions, stdlib only, no I/O; none of them raises on any `str` input. `fingerprint` says
"another node reports the same content"; `link_keys` says "these alerts share an indicator, a URL, a
domain, a media hash or a claim" (see DESIGN.md, "Deduplicate"). The canonical values of URLs and
indicators come from hub.ingest.canon_values, claim text from hub.ingest.claim_text.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from hub.ingest.canon_values import (
    HASH_TYPES,
    canonical_indicator,
    canonical_url,
    canonical_value,
    indicator_type,
    split_hostport,
)
from hub.ingest.claim_text import normalise_claim

__all__ = [
    "canonical_indicator",
    "canonical_url",
    "content_keys",
    "fingerprint",
    "index_keys",
    "link_keys",
    "link_score",
    "normalise_claim",
]


# -- fingerprints and link keys ------------------------------------------------------------------


def _dicts(alert: dict[str, Any], field: str) -> Iterable[dict[str, Any]]:
    items = alert.get(field)
    if not isinstance(items, list):
        return ()
    return (item for item in items if isinstance(item, dict))


def _strs(alert: dict[str, Any], field: str) -> Iterable[str]:
    items = alert.get(field)
    if not isinstance(items, list):
        return ()
    return (item for item in items if isinstance(item, str))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _indicators(alert: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(type, canonical value) of every indicator."""
    for ind in _dicts(alert, "indicators"):
        t = indicator_type(_str(ind.get("type")))
        yield t, canonical_value(t, _str(ind.get("value")))


def _claims(alert: dict[str, Any]) -> set[str]:
    found = {normalise_claim(_str(c.get("text"))) for c in _dicts(alert, "claims")}
    found.discard("")
    return found


@dataclass(frozen=True, slots=True)
class _Content:
    """What fingerprint and link keys are made of, canonicalised once per alert."""

    kind: str
    indicators: tuple[tuple[str, str], ...]
    urls: frozenset[str]
    claims: frozenset[str]
    narrative: str


def _content(alert: dict[str, Any]) -> _Content:
    indicators = tuple(_indicators(alert))
    urls = {canonical_url(u) for u in _strs(alert, "urls")}
    urls.update(value for t, value in indicators if t == "url")
    urls.discard("")
    claims = frozenset(_claims(alert))
    narrative = ""
    if not (indicators or urls or claims):
        narrative = normalise_claim(_str(alert.get("narrative")))
    return _Content(
        kind=_str(alert.get("kind")).strip().lower(),
        indicators=indicators,
        urls=frozenset(urls),
        claims=claims,
        narrative=narrative,
    )


def content_keys(alert: dict[str, Any]) -> tuple[str, list[str]]:
    """(fingerprint(alert), index_keys(alert)), canonicalising the alert's content only once."""
    content = _content(alert)
    return _fingerprint(content), _link_keys(content, alert, for_index=True)


def fingerprint(alert: dict[str, Any]) -> str:
    """Hex SHA-256 of an alert's canonical content: two reports with the same one are duplicates.

    Covers the kind, the set of canonical "type:value" indicators, the set of canonical URLs (from
    `urls` and url indicators) and the set of normalised claim texts; when all three sets are
    empty, the normalised `narrative`. Order and repeats in the lists do not matter; title,
    summary, severity, tlp, languages, tags, dates, share, media hashes, id and revision do not
    count. Stable across processes and Python versions (canonical JSON, no `hash()`).
    """
    return _fingerprint(_content(alert))


def _fingerprint(content: _Content) -> str:
    return hashlib.sha256(_fingerprint_input(content)).hexdigest()


def _fingerprint_input(content: _Content) -> bytes:
    """The canonical JSON that is hashed: json.dumps with ensure_ascii and no spaces. orjson
    writes the same bytes five times faster whenever its output is ASCII without DEL (which
    json.dumps escapes and orjson does not); anything else takes json.dumps itself."""
    parts = [
        "alerthub-fingerprint-1",
        content.kind,
        sorted({f"{t}:{value}" for t, value in content.indicators}),
        sorted(content.urls),
        sorted(content.claims),
        content.narrative,
    ]
    try:
        data = orjson.dumps(parts)
        if data.isascii() and b"\x7f" not in data:
            return data
    except orjson.JSONEncodeError:  # a lone surrogate
        pass
    return json.dumps(parts, ensure_ascii=True, separators=(",", ":")).encode("ascii")


# Hosts (and their subdomains) shared by too many unrelated alerts to link them: social platforms,
# messengers, link shorteners, web archives. Their full URLs still link.
_PLATFORM_HOSTS = frozenset(
    {
        "t.me",
        "telegram.me",
        "telegram.org",
        "x.com",
        "twitter.com",
        "t.co",
        "facebook.com",
        "fb.com",
        "fb.watch",
        "instagram.com",
        "threads.net",
        "youtube.com",
        "youtu.be",
        "tiktok.com",
        "vk.com",
        "ok.ru",
        "rumble.com",
        "reddit.com",
        "linkedin.com",
        "bsky.app",
        "whatsapp.com",
        "wa.me",
        "viber.com",
        "google.com",
        "bit.ly",
        "tinyurl.com",
        "archive.org",
        "archive.ph",
        "archive.today",
    }
)
_MAX_KEY_BYTES = 200
_SAFE_KEY_RE = re.compile(r"[!-z|~]*")  # printable ASCII without space, "{" and "}"


def _is_platform(host: str) -> bool:
    """Whether `host` or one of its parent domains is a platform host (every one has a dot)."""
    suffix = host
    while suffix not in _PLATFORM_HOSTS:
        dot = suffix.find(".")
        if dot == -1:
            return False
        suffix = suffix[dot + 1 :]
    return True


def _key(prefix: str, value: str) -> str:
    """`prefix:value`, with a value that is unsafe in a Redis key or too long replaced by
    "sha256:" and its digest."""
    key = f"{prefix}:{value}"
    if len(key) <= _MAX_KEY_BYTES and _SAFE_KEY_RE.fullmatch(key):
        return key
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}:sha256:{digest}"


def _url_host(url: str) -> str:
    """The host of a canonical URL, without userinfo, port or IPv6 brackets ("" if none)."""
    scheme_sep = url.find("://")
    if scheme_sep == -1:
        return ""
    end = len(url)
    for ch in "/?":
        i = url.find(ch, scheme_sep + 3)
        if i != -1:
            end = min(end, i)
    hostport = url[scheme_sep + 3 : end].rpartition("@")[2]
    host, _ = split_hostport(hostport)
    return host[1:-1] if host.startswith("[") else host


def _host_key(host: str) -> str | None:
    """ "ip:<address>" or "domain:<host without www.>" of a URL's or domain indicator's host; None
    for no host or a platform host."""
    if not host:
        return None
    if host[0].isdigit() or ":" in host:  # only these can be IP addresses; spare the exception
        try:
            return _key("ip", ipaddress.ip_address(host).compressed)
        except ValueError:
            pass
    domain = host.removeprefix("www.")
    if domain and not _is_platform(domain):
        return _key("domain", domain)
    return None


def link_keys(alert: dict[str, Any]) -> list[str]:
    """Sorted, distinct keys through which near-duplicate alerts are linked as related.

    "url:<canonical url>" per URL and url indicator; "domain:<host>" for their hosts and for domain
    indicators, with "www." removed and platform hosts (`_PLATFORM_HOSTS`) left out; a URL whose
    host is an IP address gives "ip:<address>" instead; "ip:<compressed>" per ipv4/ipv6 indicator;
    "hash:<algorithm>:<lowercase value>" per media hash (algorithm lowercased, "-" removed: SHA-256
    → sha256) and per sha256/sha1/md5 indicator; "claim:<sha256 of the normalised text>" per
    non-empty claim; "cve:<ID>" per cve indicator. Every key is printable ASCII without spaces or
    braces and at most 200 bytes: an unsafe or over-long value becomes "sha256:<hex digest>".
    """
    return _link_keys(_content(alert), alert)


def index_keys(alert: dict[str, Any]) -> list[str]:
    """The link keys a link index needs to find the same related alerts as `link_keys`: without
    the "url:" key of a URL whose host gives a "domain:" or "ip:" key, because every alert with
    that URL has that host key too. Platform URLs keep their "url:" key (their host gives none).
    On the ingest path this is a third fewer index entries for a typical threat alert."""
    return _link_keys(_content(alert), alert, for_index=True)


def _link_keys(content: _Content, alert: dict[str, Any], for_index: bool = False) -> list[str]:
    keys: set[str] = set()
    for t, value in content.indicators:
        if not value:
            continue
        if t == "domain":
            host_key = _host_key(value)
            if host_key is not None:
                keys.add(host_key)
        elif t in ("ipv4", "ipv6"):
            keys.add(_key("ip", value))
        elif t in HASH_TYPES:
            keys.add(_key("hash:" + t, value))
        elif t == "cve":
            keys.add(_key("cve", value))
    for url in content.urls:
        host_key = _host_key(_url_host(url))
        if host_key is not None:
            keys.add(host_key)
        if host_key is None or not for_index:
            keys.add(_key("url", url))
    for media in _dicts(alert, "media_hashes"):
        algorithm = _str(media.get("algorithm")).strip().lower().replace("-", "")
        value = _str(media.get("value")).strip().lower()
        if value:
            keys.add(_key("hash:" + _key_part(algorithm), value))
    for claim in content.claims:
        keys.add("claim:" + hashlib.sha256(claim.encode("utf-8", "surrogatepass")).hexdigest())
    return sorted(keys)


def link_score(link_key: str) -> str:
    """A link key as a score in a window's link index (keys.py, Keys.links): the first 52 bits
    of its BLAKE2b digest, in decimal (a double holds it exactly). A short number instead of the
    key itself makes each entry smaller in memory and in the append-only file (on random keys it
    costs the same script time as the text). Two distinct keys share a score with chance 2^-52:
    at worst an unrelated alert is then listed as related, still only to a caller the policy
    lets see it."""
    digest = hashlib.blake2b(link_key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return str(int.from_bytes(digest, "big") >> 12)


def _key_part(text: str) -> str:
    """A short, safe middle part of a key (a hash algorithm name)."""
    if len(text) <= 32 and _SAFE_KEY_RE.fullmatch(text) and ":" not in text:
        return text
    return "x" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]

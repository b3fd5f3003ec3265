"""Canonical forms of alert content, for deduplication and for linking near duplicates.

Pure functions, stdlib only, no I/O; none of them raises on any `str` input. `fingerprint` says
"another node reports the same content"; `link_keys` says "these alerts share an indicator, a URL, a
domain, a media hash or a claim" (see DESIGN.md, "Deduplicate").
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from hub.claim_text import normalise_claim

__all__ = [
    "canonical_indicator",
    "canonical_url",
    "content_keys",
    "fingerprint",
    "link_keys",
    "normalise_claim",
]

# -- URLs ----------------------------------------------------------------------------------------

# Query parameters that only say who sent the click; compared case-insensitively. Beyond the
# brief's list: _gl, twclid, ttclid, igsh and mkt_tok, which are as widespread and as meaningless.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "igsh",
        "yclid",
        "_ga",
        "_gl",
        "ref_src",
        "twclid",
        "ttclid",
        "mkt_tok",
    }
)
# `si` is a share-tracking id on YouTube and Spotify only; elsewhere it may carry meaning.
_SI_HOSTS = ("youtube.com", "youtu.be", "spotify.com")
_DEFAULT_PORTS = {"http": "80", "https": "443"}

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# One pass over a path or query: a %XX escape, a stray "%", or a character that must be escaped
# (anything outside RFC 3986 unreserved + reserved characters).
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})?|[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]")


def _fix_escape(m: re.Match[str]) -> str:
    hex_ = m.group(1)
    if hex_ is not None:
        ch = chr(int(hex_, 16))
        return ch if ch in _UNRESERVED else "%" + hex_.upper()
    text = m.group(0)
    if text == "%":  # a stray "%" becomes "%25", so that a second pass sees the same string
        return "%25"
    return "".join(f"%{b:02X}" for b in text.encode("utf-8", "surrogatepass"))


def _normalise_escapes(part: str) -> str:
    return _ESCAPE_RE.sub(_fix_escape, part)


def _canonical_host(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        try:
            return "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        except ValueError:
            return host
    if not host.isascii():
        host = _idna(host)
    return host.rstrip(".")


def _idna(host: str) -> str:
    """Punycode of a host, or the host itself when IDNA refuses it (empty or over-long labels)."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _split_hostport(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end != -1:
            rest = hostport[end + 1 :]
            if rest.startswith(":"):
                return hostport[: end + 1], rest[1:]
            if not rest:
                return hostport, None
        return hostport, None
    host, colon, port = hostport.partition(":")
    if not colon:
        return hostport, None
    return host, port


def _is_tracking(key: str, host: str) -> bool:
    k = key.lower()
    if k.startswith("utm_") or k in _TRACKING_PARAMS:
        return True
    return k == "si" and any(host == h or host.endswith("." + h) for h in _SI_HOSTS)


# An absolute http(s) URL that only its trailing slashes and its query can make non-canonical:
# a lowercase ASCII host, no userinfo, port, fragment, %-escape or character to escape. Nearly
# every URL in an alert has this shape, and this check costs a tenth of the general path.
_PLAIN_URL_RE = re.compile(
    r"(https?)://([a-z0-9-]+(?:\.[a-z0-9-]+)*)"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*)?"
    r"(?:\?([A-Za-z0-9\-._~!$&'()*+,;=:@/?]*))?"
)


def canonical_url(url: str) -> str:
    """Canonical form of a URL, used for dedup; never raises.

    Lowercases scheme and host, IDNA-encodes a non-ASCII host (keeping it lowercased when that
    fails), removes a host's trailing dot, compresses an IPv6 literal, drops default ports (80 for
    http, 443 for https), the fragment and tracking query parameters (utm_* and the click ids in
    `_TRACKING_PARAMS`; `si` only on YouTube and Spotify hosts), sorts the remaining parameters by
    key (stable for equal keys; empty ones dropped), removes trailing slashes from a non-root path
    (an empty path becomes "/"), uppercases %-escapes, decodes escaped unreserved characters and
    escapes non-ASCII and other characters that a URL may not carry (UTF-8). `www.` is kept: it is
    a different host. The userinfo is kept as given. A string that is not an absolute URL (no
    scheme or no host) is returned stripped of surrounding whitespace and otherwise unchanged:
    without a host there is nothing known to be case-insensitive.
    """
    text = url.strip()
    plain = _PLAIN_URL_RE.fullmatch(text)
    if plain is not None:
        scheme, host, path, query = plain.groups()
        path = (path or "").rstrip("/") or "/"
        return f"{scheme}://{host}{path}" + _canonical_query(query or "", host)
    return _canonical_url_general(text)


def _canonical_url_general(text: str) -> str:
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        return text
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host, port = _split_hostport(hostport)
    host = _canonical_host(host)
    if not host:
        return text
    netloc = userinfo + at + host
    if port is not None and port:
        if port.isascii() and port.isdigit():
            port = str(int(port))
            if _DEFAULT_PORTS.get(scheme) != port:
                netloc += ":" + port
        else:
            netloc += ":" + port
    path = _normalise_escapes(parts.path).rstrip("/") or "/"
    return f"{scheme}://{netloc}{path}" + _canonical_query(_normalise_escapes(parts.query), host)


def _canonical_query(query: str, host: str) -> str:
    """"?" and the parameters that carry meaning, sorted by key; "" when none do."""
    if not query:
        return ""
    kept = [(p.partition("=")[0], p) for p in query.split("&") if p]
    kept = [kp for kp in kept if not _is_tracking(kp[0], host)]
    if not kept:
        return ""
    kept.sort(key=lambda kp: kp[0])
    return "?" + "&".join(p for _, p in kept)


# -- indicators ----------------------------------------------------------------------------------

# STIX cyber-observable names and hash spellings accepted as aliases of the short type names.
_TYPE_ALIASES = {
    "ipv4-addr": "ipv4",
    "ipv6-addr": "ipv6",
    "domain-name": "domain",
    "hostname": "domain",
    "email-addr": "email",
    "sha-256": "sha256",
    "sha-1": "sha1",
}
_HASH_TYPES = frozenset({"sha256", "sha1", "md5"})


def _indicator_type(type_: str) -> str:
    t = type_.strip().casefold()
    return _TYPE_ALIASES.get(t, t)


def _canonical_domain(value: str) -> str:
    return _canonical_host(value.strip())


# A dotted-quad IPv4 address without leading zeros is already in its compressed form.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PLAIN_IPV4_RE = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def _canonical_ip(value: str) -> str:
    text = value.strip()
    if _PLAIN_IPV4_RE.fullmatch(text):
        return text
    try:
        return ipaddress.ip_address(text.strip("[]")).compressed
    except ValueError:
        return text.lower()


def canonical_indicator(type_: str, value: str) -> str:
    """Canonical value of a typed indicator; never raises.

    url → `canonical_url`; domain → lowercase, IDNA punycode, trailing dot removed; ipv4/ipv6 →
    compressed form (an IPv4-mapped IPv6 address stays IPv6), stripped lowercase when unparseable;
    email → the whole address lowercased (mailbox local parts are case-insensitive in practice,
    and a phishing sender is the same sender whatever its case), its domain IDNA-encoded;
    sha256/sha1/md5 → lowercase; cve → uppercase; anything else → stripped, casefolded. The type
    is matched case-insensitively; STIX names (`ipv4-addr`, `domain-name`, …) are aliases.
    """
    return _canonical_value(_indicator_type(type_), value)


def _canonical_value(t: str, value: str) -> str:
    """canonical_indicator for a type already normalised by _indicator_type."""
    if t == "url":
        return canonical_url(value)
    if t == "domain":
        return _canonical_domain(value)
    if t in ("ipv4", "ipv6"):
        return _canonical_ip(value)
    if t == "email":
        local, at, domain = value.strip().rpartition("@")
        if not at:
            return value.strip().lower()
        return local.lower() + "@" + _canonical_domain(domain)
    if t in _HASH_TYPES:
        return value.strip().lower()
    if t == "cve":
        return value.strip().upper()
    return value.strip().casefold()


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
        t = _indicator_type(_str(ind.get("type")))
        yield t, _canonical_value(t, _str(ind.get("value")))


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
    """(fingerprint(alert), link_keys(alert)), canonicalising the alert's content only once."""
    content = _content(alert)
    return _fingerprint(content), _link_keys(content, alert)


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
    host, _ = _split_hostport(hostport)
    return host[1:-1] if host.startswith("[") else host


def _host_keys(host: str, keys: set[str]) -> None:
    if not host:
        return
    if host[0].isdigit() or ":" in host:  # only these can be IP addresses; spare the exception
        try:
            keys.add(_key("ip", ipaddress.ip_address(host).compressed))
            return
        except ValueError:
            pass
    domain = host.removeprefix("www.")
    if domain and not _is_platform(domain):
        keys.add(_key("domain", domain))


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


def _link_keys(content: _Content, alert: dict[str, Any]) -> list[str]:
    keys: set[str] = set()
    for t, value in content.indicators:
        if not value:
            continue
        if t == "domain":
            _host_keys(value, keys)
        elif t in ("ipv4", "ipv6"):
            keys.add(_key("ip", value))
        elif t in _HASH_TYPES:
            keys.add(_key("hash:" + t, value))
        elif t == "cve":
            keys.add(_key("cve", value))
    for url in content.urls:
        keys.add(_key("url", url))
        _host_keys(_url_host(url), keys)
    for media in _dicts(alert, "media_hashes"):
        algorithm = _str(media.get("algorithm")).strip().lower().replace("-", "")
        value = _str(media.get("value")).strip().lower()
        if value:
            keys.add(_key("hash:" + _key_part(algorithm), value))
    for claim in content.claims:
        keys.add("claim:" + hashlib.sha256(claim.encode("utf-8", "surrogatepass")).hexdigest())
    return sorted(keys)


def _key_part(text: str) -> str:
    """A short, safe middle part of a key (a hash algorithm name)."""
    if len(text) <= 32 and _SAFE_KEY_RE.fullmatch(text) and ":" not in text:
        return text
    return "x" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]

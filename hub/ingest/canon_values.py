"""Canonical values of URLs and typed indicators, the parts of an alert that dedup compares.

Pure functions, stdlib only, no I/O; none of them raises on any `str` input. hub.canon builds
fingerprints and link keys from them.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

__all__ = ["canonical_indicator", "canonical_url"]


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


def split_hostport(hostport: str) -> tuple[str, str | None]:
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
    host, port = split_hostport(hostport)
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
    """ "?" and the parameters that carry meaning, sorted by key; "" when none do."""
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
HASH_TYPES = frozenset({"sha256", "sha1", "md5"})


def indicator_type(type_: str) -> str:
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
    return canonical_value(indicator_type(type_), value)


def canonical_value(t: str, value: str) -> str:
    """canonical_indicator for a type already normalised by indicator_type."""
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
    if t in HASH_TYPES:
        return value.strip().lower()
    if t == "cve":
        return value.strip().upper()
    return value.strip().casefold()

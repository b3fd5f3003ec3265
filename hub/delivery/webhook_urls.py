"""Refuse webhook URLs that point into the hub's own network (server-side request forgery): a
subscriber must not be able to make the hub POST to its Redis, a cloud metadata service at
169.254.169.254 or anything else only the hub can reach.

Two guards, both needed:

- `check_webhook_url` when a subscription is made *and before each delivery*. It is the only guard
  for IP-literal hosts: aiohttp connects to those without calling the resolver. (3.14 refuses
  shortened numeric forms such as "2130706433" or "127.1" itself, older releases do not; every
  release passes canonical literals like "127.0.0.1" or "[::1]" straight to the socket.) For a
  literal the check costs no I/O; for a name it resolves the name once more.
- `PublicOnlyResolver` in the delivery session's TCPConnector, so that a name which resolved to a
  public address at check time but to a private one at delivery time (DNS rebinding) is refused
  at the moment of connecting.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from hub.delivery.special_addresses import special_purpose

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[str]]]

# Addresses that are only an IPv4 address in IPv6 clothing: the IPv4 address decides.
# (3.11's ipv4_mapped covers ::ffff:0:0/96; NAT64 needs spelling out.)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# SIIT's IPv4-translated form and the deprecated IPv4-compatible form: reserved space, but the
# embedded address is named in the refusal.
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Where IANA allocates IPv6 unicast addresses; the rest of the space is reserved by the IETF or
# special (unique-local, link-local, multicast).
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# One part of an inet_aton / WHATWG IPv4 address: hex, octal (leading 0) or decimal.
# Decimal is at most 10 digits (< 2**32), which also keeps int() clear of its digit limit.
_HEX, _OCTAL, _DECIMAL = (re.compile(p) for p in (r"0x[0-9a-f]*", r"0[0-7]+", r"0|[1-9][0-9]{0,9}"))


class UnsafeWebhookUrl(ValueError):
    """A webhook URL the hub will not deliver to; its str is a sentence saying why. `local` is
    True when the refused address is a loopback or private one: the kind a test or a closed
    network means, which ALERTHUB_ALLOW_PRIVATE_WEBHOOKS lets through."""

    def __init__(self, message: str, local: bool = False) -> None:
        super().__init__(message)
        self.local = local


class NoPublicAddress(OSError):
    """Raised by PublicOnlyResolver; aiohttp wraps it in ClientConnectorDNSError (os_error)."""


def _v4_reason(ip: ipaddress.IPv4Address) -> str | None:
    if ip.is_multicast:  # 224.0.0.0/4: the multicast registry's, not a special-purpose block
        return "a multicast address"
    return special_purpose(ip)


def _low_32_bits(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)


def _v6_reason(ip: ipaddress.IPv6Address) -> str | None:
    if ip.is_unspecified or ip.is_loopback:  # before ::/96, which they are in
        return special_purpose(ip)
    wrapped = ip.ipv4_mapped
    if wrapped is None and ip in _NAT64:
        wrapped = _low_32_bits(ip)
    if wrapped is not None:
        inner = _v4_reason(wrapped)
        return None if inner is None else f"an IPv6 form of {wrapped}, {inner}"
    embedded = [ip.sixtofour, *(ip.teredo or ())]
    if ip in _TRANSLATED or ip in _COMPATIBLE:
        embedded.append(_low_32_bits(ip))
    for v4 in embedded:
        inner = None if v4 is None else _v4_reason(v4)
        if inner is not None:
            return f"an IPv6 address embedding {v4}, {inner}"
    if ip.is_multicast:
        return "a multicast address"
    reason = special_purpose(ip)
    if reason is None and ip not in _GLOBAL_UNICAST:
        return "a reserved address (outside 2000::/3)"
    return reason


def _reason(ip: IPAddress) -> str | None:
    """Why `ip` is not public ("a loopback address"), or None when it is."""
    return _v6_reason(ip) if isinstance(ip, ipaddress.IPv6Address) else _v4_reason(ip)


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is reachable on the public internet and so not inside the hub's network:
    not multicast, in no block of the IANA special-purpose registries that is not globally
    reachable (hub.special_addresses), for IPv6 inside the global unicast space 2000::/3, and,
    for an IPv6 address that carries an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo,
    IPv4-compatible, SIIT), that IPv4 address public too.

    Python's is_global and is_private are not used: their tables lag the registries (3.11 calls
    192.0.0.8, 192.88.99.1 and 3fff::1 global, and multicast, fec0::/10 and 6to4 or NAT64
    wrappings of private addresses too) and changed in security releases (CVE-2024-4032).
    """
    return _reason(ip) is None


def _ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """Parse `host` as C's inet_aton and the WHATWG URL standard do: 1-4 parts, each hex, octal
    or decimal, the last filling the remaining bytes ("127.1", "0x7f000001", "2130706433")."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # "127.0.0.1." is an address too
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        if _HEX.fullmatch(part):
            numbers.append(int(part[2:] or "0", 16))
        elif _OCTAL.fullmatch(part):
            numbers.append(int(part, 8))
        elif _DECIMAL.fullmatch(part):
            numbers.append(int(part))
        else:
            return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(leading):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def host_address(host: str) -> IPAddress | None:
    """The IP address a URL host names when it is an IP literal in any spelling inet_aton or a
    browser accepts (dotted, shortened, decimal, octal, hex; IPv6 bracketed or not); None when it
    is a DNS name."""
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(unquote(host))  # a zone id arrives as "%25eth0"
        except ValueError:
            return None
    return _ipv4_literal(host)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for *_, sockaddr in infos]


# Loopback and the private-use ranges (RFC 1918, unique-local fc00::/7).
_LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7")
)


def _is_local(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in _LOCAL_NETWORKS)


def _refuse_if_not_public(ip: IPAddress, what: str) -> None:
    reason = _reason(ip)
    if reason is not None:
        raise UnsafeWebhookUrl(f"{what} {reason}", local=_is_local(ip))


async def check_webhook_url(
    url: str, *, allow_private: bool, resolve: Resolve | None = None
) -> None:
    """Raise UnsafeWebhookUrl unless `url` is an http(s) URL with a host, no credentials and a
    valid port whose host (an IP literal, or every address its name resolves to) is public.
    `allow_private` (for tests and closed deployments) skips the address checks only."""
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, TypeError) as e:
        raise UnsafeWebhookUrl("the webhook URL is not a valid URL") from e
    if parsed.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("the webhook URL must start with http:// or https://")
    host = parsed.raw_host
    if not host:
        raise UnsafeWebhookUrl("the webhook URL has no host")
    if parsed.user is not None or parsed.password is not None:
        raise UnsafeWebhookUrl("the webhook URL must not contain a user name or password")
    if port is None or not 1 <= port <= 65535:
        raise UnsafeWebhookUrl("the webhook URL's port must be between 1 and 65535")
    if allow_private:
        return
    literal = host_address(host)
    if literal is not None:
        _refuse_if_not_public(literal, f"the webhook URL's host {host} is")
        return
    try:
        addresses = await (resolve or _getaddrinfo)(host, port)
    except (OSError, UnicodeError) as e:  # gaierror; UnicodeError for a label over 63 bytes
        raise UnsafeWebhookUrl(f"the webhook URL's host {host} does not resolve") from e
    if not addresses:
        raise UnsafeWebhookUrl(f"the webhook URL's host {host} does not resolve")
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError as e:
            raise UnsafeWebhookUrl(
                f"the webhook URL's host {host} resolves to {text!r}, which is not an IP address"
            ) from e
        _refuse_if_not_public(ip, f"the webhook URL's host {host} resolves to {text},")


class PublicOnlyResolver(AbstractResolver):
    """An aiohttp resolver that passes on only public addresses, and raises NoPublicAddress (an
    OSError, which aiohttp reports as ClientConnectorDNSError) when none is left. Build it inside
    the running loop, like aiohttp's own resolvers."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        public = [r for r in results if _is_public_text(r["host"])]
        if not public:
            raise NoPublicAddress(errno.EPERM, f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def _is_public_text(address: str) -> bool:
    try:
        return is_public_address(ipaddress.ip_address(address))
    except ValueError:
        return False

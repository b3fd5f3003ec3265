"""The IANA IPv4 and IPv6 Special-Purpose Address Registries, written out: every block that is
not globally reachable, with what to call an address in it. Pure data and one lookup, no I/O.

Python's ipaddress tables lag the registries (in 3.11, 192.0.0.8, 192.88.99.1 and 3fff::1 are
is_global) and have changed in security releases (CVE-2024-4032), so the webhook address check
reads these tables instead, and its answer does not depend on the Python release.

From https://www.iana.org/assignments/iana-ipv4-special-registry/ and
https://www.iana.org/assignments/iana-ipv6-special-registry/ as they stood in late 2024 (the IPv6
one last updated 2024-10-22, for 5f00::/16 of RFC 9602; 3fff::/20 is RFC 9637's). Left out on
purpose, because the address check judges the IPv4 address they carry instead:
::ffff:0:0/96 (IPv4-mapped), 64:ff9b::/96 (NAT64, globally reachable), 2002::/16 (6to4).
Blocks of which the registry calls only some addresses globally reachable (192.0.0.0/24 with its
PCP and TURN anycast addresses, 192.88.99.0/24 with the 6a44 relay, 2001::/23 with anycast
services, AMT, AS112, ORCHIDv2 and DRIP) are refused whole: none of those is a webhook endpoint.
The blocks the registry calls globally reachable (192.31.196.0/24 and 192.175.48.0/24 AS112,
192.52.193.0/24 AMT, 2620:4f:8000::/48 AS112) are not listed.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

# The more specific block first where blocks nest: the first match names the address.
SPECIAL_IPV4: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(block), name)
    for block, name in (
        ("0.0.0.0/32", "the unspecified address"),
        ("0.0.0.0/8", 'a "this network" address'),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol assignment (192.0.0.0/24)"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a deprecated 6to4 relay anycast address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("255.255.255.255/32", "the limited broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)
SPECIAL_IPV6: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(block), name)
    for block, name in (
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/23", "an IETF protocol assignment (2001::/23)"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a segment routing (SRv6) SID"),
        ("fc00::/7", "a unique-local address"),
        ("fe80::/10", "a link-local address"),
    )
)


def special_purpose(ip: IPv4Address | IPv6Address) -> str | None:
    """What the registry makes `ip` ("a documentation address"), when it is in a block that is
    not globally reachable; None otherwise."""
    table = SPECIAL_IPV4 if isinstance(ip, IPv4Address) else SPECIAL_IPV6
    for network, name in table:
        if ip in network:
            return name
    return None

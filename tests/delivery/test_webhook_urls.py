"""Webhook URLs cannot point the hub at its own network, in any spelling or through DNS."""

from __future__ import annotations

import ipaddress
import re
import socket

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from pytest_aiohttp import AiohttpServer

from hub.delivery.webhook_urls import (
    NoPublicAddress,
    PublicOnlyResolver,
    Resolve,
    UnsafeWebhookUrl,
    check_webhook_url,
    host_address,
    is_public_address,
)


async def no_resolution(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} should not have been resolved")


def resolving_to(*addresses: str) -> tuple[list[tuple[str, int]], Resolve]:
    """A fake resolver answering `addresses`, and the list of the calls it received."""
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return list(addresses)

    return calls, resolve


REFUSED = [
    ("http://127.0.0.1/hook", "is a loopback address"),
    ("http://127.1/hook", "is a loopback address"),
    ("http://2130706433/hook", "is a loopback address"),
    ("http://0177.0.0.1/hook", "is a loopback address"),
    ("http://0x7f000001/hook", "is a loopback address"),
    ("http://0x7f.0.0.1/hook", "is a loopback address"),
    ("http://0X7F.0.0.1./hook", "is a loopback address"),
    ("http://[::1]/hook", "is a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "IPv6 form of 127.0.0.1, a loopback address"),
    ("http://[::ffff:7f00:1]/hook", "IPv6 form of 127.0.0.1, a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "is a link-local address"),
    ("http://10.1.2.3/hook", "is a private address"),
    ("http://172.16.0.1/hook", "is a private address"),
    ("http://192.168.1.1/hook", "is a private address"),
    ("http://100.64.0.1/hook", "is a shared (carrier-grade NAT) address"),
    ("http://0.0.0.0:6379/", "is the unspecified address"),
    ("http://[fe80::1]/hook", "is a link-local address"),
    ("http://[fe80::1%25eth0]/hook", "is a link-local address"),
    ("http://[fc00::1]/hook", "is a unique-local address"),
    ("http://[2002:7f00:1::]/hook", "embedding 127.0.0.1, a loopback address"),
    ("http://[64:ff9b::a00:1]/hook", "IPv6 form of 10.0.0.1, a private address"),
    ("http://192.0.0.8/hook", "is an IETF protocol assignment (192.0.0.0/24)"),
    ("http://192.88.99.1/hook", "is a deprecated 6to4 relay anycast address"),
    ("http://[3fff::1]/hook", "is a documentation address"),
    ("http://[5f00::1]/hook", "is a segment routing (SRv6) SID"),
    ("http://192.0.2.1/hook", "is a documentation address"),
    ("http://198.18.0.1/hook", "is a benchmarking address"),
    ("http://255.255.255.255/hook", "is the limited broadcast address"),
    ("http://[2001:db8::1]/hook", "is a documentation address"),
    ("http://[2001:2::1]/hook", "is an IETF protocol assignment (2001::/23)"),
    ("http://[100::1]/hook", "is a discard-only address"),
    ("http://[64:ff9b:1::5db8:d822]/hook", "is a local-use NAT64 address"),
    ("http://[4000::1]/hook", "is a reserved address (outside 2000::/3)"),
    ("http://[ff02::1]/hook", "is a multicast address"),
    ("http://[::ffff:192.0.0.8]/hook", "IPv6 form of 192.0.0.8, an IETF protocol assignment"),
    ("http://[64:ff9b::c058:6301]/hook", "IPv6 form of 192.88.99.1, a deprecated 6to4 relay"),
    ("http://[2002:c000:8::1]/hook", "embedding 192.0.0.8, an IETF protocol assignment"),
    ("ftp://93.184.216.34/hook", "must start with http:// or https://"),
    ("example.com/hook", "must start with http:// or https://"),
    ("http://user:pw@93.184.216.34/hook", "must not contain a user name or password"),
    ("http://user@93.184.216.34/hook", "must not contain a user name or password"),
    ("http:///hook", "has no host"),
    ("http://93.184.216.34:0/hook", "port must be between 1 and 65535"),
    ("http://93.184.216.34:99999/hook", "is not a valid URL"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
async def test_unsafe_urls_are_refused(url: str, why: str) -> None:
    """Each internal address, in every spelling, and each malformed URL is refused with a reason."""
    with pytest.raises(UnsafeWebhookUrl, match=re.escape(why)):
        await check_webhook_url(url, allow_private=False, resolve=no_resolution)


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/hook",
        "https://93.184.216.34:8443/hook?x=1",
        "https://[2606:4700::1111]/hook",
        "https://[::ffff:93.184.216.34]/hook",
        "https://[64:ff9b::5db8:d822]/hook",
    ],
)
async def test_public_literals_are_accepted_without_resolving(url: str) -> None:
    """A public IP literal is accepted, and no DNS lookup is made for it."""
    await check_webhook_url(url, allow_private=False, resolve=no_resolution)


async def test_refusal_reads_as_a_sentence() -> None:
    """The refusal's str names the host and says why, for showing to the subscriber."""
    with pytest.raises(UnsafeWebhookUrl) as caught:
        await check_webhook_url("http://127.0.0.1:8080/", allow_private=False)
    assert str(caught.value) == "the webhook URL's host 127.0.0.1 is a loopback address"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://[::1]/hook", "http://localhost/", "http://redis/"]
)
async def test_allow_private_accepts_internal_hosts(url: str) -> None:
    """With allow_private, internal hosts are accepted and names are not resolved."""
    await check_webhook_url(url, allow_private=True, resolve=no_resolution)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/", "http://u:p@127.0.0.1/", "http:///x", "http://127.0.0.1:0/"]
)
async def test_allow_private_still_checks_the_url_itself(url: str) -> None:
    """allow_private skips only the address checks: scheme, host, credentials, port still apply."""
    with pytest.raises(UnsafeWebhookUrl):
        await check_webhook_url(url, allow_private=True, resolve=no_resolution)


async def test_localhost_is_refused_through_real_resolution() -> None:
    """The name localhost, looked up with the system resolver, is refused as loopback."""
    with pytest.raises(UnsafeWebhookUrl, match=r"host localhost resolves to .*a loopback address"):
        await check_webhook_url("http://localhost:8080/hook", allow_private=False)


async def test_name_resolving_to_a_private_address_is_refused() -> None:
    """A name whose DNS answer is a private address is refused, naming that address."""
    _, resolve = resolving_to("10.0.0.7")
    with pytest.raises(UnsafeWebhookUrl, match=r"intranet.example resolves to 10\.0\.0\.7, a priv"):
        await check_webhook_url("https://intranet.example/", allow_private=False, resolve=resolve)


async def test_name_with_one_private_address_among_public_ones_is_refused() -> None:
    """Every resolved address must be public: one private address among them is enough to refuse."""
    _, resolve = resolving_to("93.184.216.34", "2606:4700::1111", "::1")
    with pytest.raises(UnsafeWebhookUrl, match="a loopback address"):
        await check_webhook_url("https://mixed.example/", allow_private=False, resolve=resolve)


async def test_name_resolving_to_public_addresses_is_accepted() -> None:
    """A name resolving only to public addresses is accepted; the lookup gets host and port."""
    calls, resolve = resolving_to("93.184.216.34", "2606:4700::1111")
    await check_webhook_url("https://Bücher.example/hook", allow_private=False, resolve=resolve)
    await check_webhook_url("http://hooks.example:8080/", allow_private=False, resolve=resolve)
    assert calls == [("xn--bcher-kva.example", 443), ("hooks.example", 8080)]


async def test_name_that_does_not_resolve_is_refused() -> None:
    """A name with no address, or whose lookup fails, is refused."""

    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnsafeWebhookUrl, match="does not resolve"):
        await check_webhook_url("https://gone.example/", allow_private=False, resolve=failing)
    _, empty = resolving_to()
    with pytest.raises(UnsafeWebhookUrl, match="does not resolve"):
        await check_webhook_url("https://gone.example/", allow_private=False, resolve=empty)


async def test_resolver_answer_that_is_not_an_ip_is_refused() -> None:
    """A lookup answer that is not an IP address is refused rather than trusted."""
    _, resolve = resolving_to("not-an-ip")
    with pytest.raises(UnsafeWebhookUrl, match="not an IP address"):
        await check_webhook_url("https://odd.example/", allow_private=False, resolve=resolve)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("1.65536", "1.1.0.0"),
        ("10.1.258", "10.1.1.2"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[FE80::1%25eth0]", "fe80::1%eth0"),
    ],
)
def test_host_address_reads_every_ip_spelling(host: str, expected: str) -> None:
    """Dotted, shortened, decimal, octal, hex and IPv6 hosts are read as the address they name."""
    assert host_address(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "1.2.3.4.5",
        "1.2.3.256",
        "1.16777216",
        "4294967296",
        "08.0.0.1",
        "0x7g.0.0.1",
        "127.0.0.1x",
        "1..2",
        "+1.2.3.4",
        "1_0.0.0.1",
        "١٢٧.0.0.1",
        "9" * 5000,
        "[not:an:address]",
        "",
    ],
)
def test_host_address_is_none_for_names(host: str) -> None:
    """Names, and numbers no address parser accepts, are not taken for IP addresses."""
    assert host_address(host) is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "100.64.0.1",
        "169.254.169.254",
        "192.0.2.1",
        "198.18.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
        "::ffff:0:a00:1",
        "::a00:1",
        "2002:a00:1::",
        "2002:c0a8:101::1",
        "64:ff9b::7f00:1",
        "64:ff9b:1::5db8:d822",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    """Loopback, private, shared, link-local, multicast, reserved and IPv4-wrapping forms are not
    public."""
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",
        "2002:5db8:d822::1",
    ],
)
def test_public_addresses_are_public(address: str) -> None:
    """Internet addresses, and IPv6 wrappings of public IPv4 addresses, are public."""
    assert is_public_address(ipaddress.ip_address(address))


# The IANA IPv4 and IPv6 Special-Purpose Address Registries' blocks that are not globally
# reachable (or only in part), written out here apart from hub/special_addresses.py.
NOT_GLOBAL = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.0.0/29",
    "192.0.0.8/32",
    "192.0.0.170/31",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::1/128",
    "::/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:2::/48",
    "2001:10::/28",
    "2001:db8::/32",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
]
GLOBAL = ["192.31.196.0/24", "192.52.193.0/24", "192.175.48.0/24", "2620:4f:8000::/48"]


@pytest.mark.parametrize("block", NOT_GLOBAL)
def test_every_special_purpose_block_is_refused(block: str) -> None:
    """The first and the last address of each block the IANA registries call not globally
    reachable are not public, whatever Python's own tables say."""
    network = ipaddress.ip_network(block)
    assert not is_public_address(network[0])
    assert not is_public_address(network[-1])


@pytest.mark.parametrize("block", GLOBAL)
def test_globally_reachable_special_purpose_blocks_are_public(block: str) -> None:
    """Blocks the registries call globally reachable (AS112, AMT) are not refused."""
    network = ipaddress.ip_network(block)
    assert is_public_address(network[1])


class FakeResolver(AbstractResolver):
    """Answers fixed addresses for any name and records whether it was closed."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_public_only_resolver_drops_internal_addresses() -> None:
    """Of a mixed answer, only the public addresses are passed on to aiohttp."""
    resolver = PublicOnlyResolver(FakeResolver("10.0.0.1", "93.184.216.34", "::1", "1.1.1.1"))
    results = await resolver.resolve("mixed.example", 443)
    assert [r["host"] for r in results] == ["93.184.216.34", "1.1.1.1"]


async def test_public_only_resolver_raises_oserror_when_nothing_is_left() -> None:
    """An answer with no public address raises an OSError naming the host."""
    resolver = PublicOnlyResolver(FakeResolver("127.0.0.1", "fe80::1%eth0", "garbage"))
    with pytest.raises(NoPublicAddress, match=r"rebound\.example resolves to no public address"):
        await resolver.resolve("rebound.example", 80)
    assert issubclass(NoPublicAddress, OSError)


async def test_public_only_resolver_closes_the_inner_one() -> None:
    """Closing the resolver closes the one it wraps."""
    inner = FakeResolver()
    await PublicOnlyResolver(inner).close()
    assert inner.closed


async def test_session_with_public_only_resolver_cannot_reach_localhost(
    aiohttp_server: AiohttpServer,
) -> None:
    """A real request to localhost:<port of a live server> fails to connect through the resolver."""
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="reached")

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    url = f"http://localhost:{server.port}/"

    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        assert await answer.text() == "reached"  # the server is reachable without the guard

    resolver = PublicOnlyResolver()
    connector = aiohttp.TCPConnector(resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get(url)
    await resolver.close()
    assert isinstance(caught.value.os_error, NoPublicAddress)
    assert hits == ["/"]

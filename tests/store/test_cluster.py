"""hub.store.cluster and the cluster parts of hub.store.connect: redis+cluster:// URLs read (and
refused with a reason), and against a real three-master cluster (tests/faults/redis_cluster.py):
the version check, the `{core}` master's role, pipelined script calls and commands each run on
the master of their slot, in order per slot, and cluster failover errors answered as 503."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.exceptions
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hub.settings import redact_url
from hub.store.cluster import CORE_TAG, stale_map
from hub.store.connect import (
    RedisConnector,
    RedisUrlError,
    check_server_version,
    is_cluster,
    parse_redis_url,
    server_role,
)
from hub.store.keys import Keys
from hub.store.redis_faults import store_unavailable
from tests.faults.redis_cluster import ClusterSet

KEYS = Keys("t")
# Returns its key's slot's node's port and its argument: where the call ran, and in what order.
WHERE_LUA = """
redis.call('RPUSH', KEYS[1], ARGV[1])
return {string.match(redis.call('INFO', 'server'), 'tcp_port:(%d+)'), ARGV[1]}
"""


def test_a_cluster_url_names_its_nodes_and_credentials() -> None:
    """Hosts (port 6379 when left out, IPv6 in brackets), the nodes' user and password; a
    trailing slash or /0 is allowed; rediss+cluster:// turns TLS on with its options."""
    address = parse_redis_url("redis+cluster://hub:s%40cret@h1:7000,h2,[::1]:7002/")
    assert address.cluster_nodes == (("h1", 7000), ("h2", 6379), ("::1", 7002))
    assert (address.username, address.password) == ("hub", "s@cret")
    assert address.is_cluster and not address.is_sentinel and not address.tls
    assert parse_redis_url("redis+cluster://h:7000").cluster_nodes == (("h", 7000),)
    assert parse_redis_url("redis+cluster://h:7000/0").password is None
    tls = parse_redis_url("rediss+cluster://:pw@h:7000/?ssl_ca_certs=/ca.pem&ssl_cert_reqs=none")
    assert tls.tls and (tls.ssl_ca_certs, tls.ssl_cert_reqs) == ("/ca.pem", "none")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster:///", "one or more host:port"),
        ("redis+cluster://h:7000/3", "only database 0"),
        ("redis+cluster://h:port/", "must be a whole number"),
        ("redis+cluster://h:7000/?socket_timeout=1", "unknown option 'socket_timeout'"),
        ("redis+cluster://h:7000/?ssl_cert_reqs=none", "need rediss+cluster://"),
        ("redis-cluster://h:7000/", "redis+cluster://"),
    ],
)
def test_bad_cluster_urls_are_refused_with_a_reason(url: str, says: str) -> None:
    """Each malformed cluster URL is refused with a message naming the variable and the fault."""
    with pytest.raises(RedisUrlError) as refused:
        parse_redis_url(url)
    assert says in str(refused.value) and "ALERTHUB_REDIS_URL" in str(refused.value)


def test_a_cluster_urls_password_is_never_logged() -> None:
    """The logged form of a cluster URL hides its password."""
    assert redact_url("redis+cluster://u:topsecret@h1:7000,h2:7001/") == (
        "redis+cluster://u:***@h1:7000,h2:7001/"
    )


def test_failover_answers_are_503s() -> None:
    """What a cluster answers while a slot changes hands, as a reply or as redis-py raises it,
    is a 503 saying nothing was stored; other error replies stay bugs."""
    for error in (
        ResponseError("MOVED 3999 127.0.0.1:7002"),
        ResponseError("CLUSTERDOWN The cluster is down"),
        ResponseError("TRYAGAIN Multiple keys request during rehashing of slot"),
        redis.exceptions.ClusterDownError("The cluster is down"),
        redis.exceptions.TryAgainError("Multiple keys"),
        redis.exceptions.MovedError("3999 127.0.0.1:7002"),
        redis.exceptions.SlotNotCoveredError("Slot 1 is not covered"),
        redis.exceptions.ClusterError("TTL exhausted."),
    ):
        answer = store_unavailable(error)
        assert answer is not None and "failing over; nothing was stored" in str(answer), error
    assert store_unavailable(ResponseError("CROSSSLOT Keys don't hash to the same slot")) is None
    assert stale_map(ResponseError("MOVED 1 h:1")) and not stale_map(ResponseError("WRONGTYPE"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSet]:
    deployment = ClusterSet(
        Path(tmp_path_factory.mktemp("cluster")), masters=3, replicas=(0, 0, 0)
    ).start()
    yield deployment
    deployment.stop()


@pytest.fixture
async def connected(cluster: ClusterSet) -> AsyncIterator[tuple[RedisConnector, Redis]]:
    connector = RedisConnector.from_url(cluster.url)
    client = connector.client(max_connections=8)
    await client.flushall()
    yield connector, client
    await client.aclose()
    await connector.aclose()


async def test_version_and_role_come_from_the_cluster(
    connected: tuple[RedisConnector, Redis],
) -> None:
    """The version check asks every master; readiness asks the master of `{core}`, which is a
    primary while the cluster is ok."""
    _, client = connected
    assert is_cluster(client)
    assert (await check_server_version(client)) >= "6.2"
    role = await server_role(client)
    assert role.is_primary and role.connected_replicas == 0


async def test_script_calls_run_on_the_master_of_their_slot_in_order(
    cluster: ClusterSet, connected: tuple[RedisConnector, Redis]
) -> None:
    """call, call_many and command go to the master serving their first key's slot; the calls
    of one slot run in the order given; {core} calls keep to one master."""
    connector, client = connected
    batcher = connector.batcher(client)
    script = client.register_script(WHERE_LUA)
    await client.script_load(WHERE_LUA)  # on every master: call_many leaves NOSCRIPT to callers
    try:
        subs = [f"s{n}" for n in range(12)]
        calls = [([KEYS.feed(s)], [str(i)]) for i in range(3) for s in subs]
        replies = await batcher.call_many(script, calls)
        for (keys, args), (port, echoed) in zip(calls, replies, strict=True):
            assert int(port) == cluster.master_of(keys[0]) and echoed.decode() == args[0]
        assert len({int(port) for port, _ in replies}) >= 2
        for s in subs:
            assert await batcher.command("LRANGE", KEYS.feed(s), 0, -1) == [b"0", b"1", b"2"]
        port, _ = await batcher.call(script, [KEYS.events], ["x"])
        assert int(port) == cluster.master_of(KEYS.events) == cluster.master_of(CORE_TAG)
    finally:
        await batcher.close()


async def test_read_scripts_without_keys_of_their_own_run_on_the_core_master(
    connected: tuple[RedisConnector, Redis],
) -> None:
    """read_hashes_lua builds `{core}` keys from the prefix: given the prefix as its key, the
    cluster runs it where those keys are."""
    from hub.store.scripts import Scripts

    _, client = connected
    scripts = Scripts.register(client)
    await client.hset(KEYS.alert("a1"), mapping={"doc": "d", "meta": "m"})
    rows = await scripts.read_hashes(
        keys=[KEYS.core], args=[KEYS.core, "alert:", 2, "doc", "meta", "a1"]
    )
    assert rows == [[b"d", b"m"]]


async def test_a_call_answered_moved_runs_once_on_the_master_it_names(
    cluster: ClusterSet, connected: tuple[RedisConnector, Redis]
) -> None:
    """A slot given to another master after the hub read the slot map: the old master answers
    MOVED (the call did not run), and the call runs once on the new master."""
    connector, client = connected
    batcher = connector.batcher(client)
    script = client.register_script(WHERE_LUA)
    await client.script_load(WHERE_LUA)
    key = KEYS.feed("moved-away")
    try:
        port, _ = await batcher.call(script, [key], ["before"])  # the batcher knows the node
        old = int(port)
        assert old == cluster.master_of(key)
        new = next(p for p in cluster.first_masters if p != old)
        slot = cluster.keyslot(key)
        await client.delete(key)  # an empty slot changes hands with SETSLOT NODE alone
        new_id = cluster.node_id(new)
        for port_ in (new, old, *cluster.first_masters):
            node = cluster.client(port_)
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", new_id)
            node.close()
        assert client.get_node_from_key(key).port == old  # the hub's map is stale now
        port, echoed = await batcher.call(script, [key], ["after"])
        assert (int(port), echoed) == (new, b"after")
        assert await client.lrange(key, 0, -1) == [b"after"]  # once, on the new master
    finally:
        await batcher.close()

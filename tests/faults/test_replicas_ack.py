"""ALERTHUB_MIN_REPLICAS_ACK: an accepted alert is answered only once that many replicas hold it
(Redis WAIT on the ingest connection, after the write). Real servers: a primary and a replica;
the replica is paused (SIGSTOP) to play a replica that does not answer in time."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.batching import NotReplicated, ReplicasAck, ScriptBatcher
from hub.store.embedded import RedisServer, free_port, start_redis_server
from hub.store.keys import Keys
from hub.store.redis_faults import store_unavailable
from hub.store.redis_pipe import PipelinedRedis
from tests.conftest import Api, unique_threat
from tests.faults.sentinel import NODE_CONFIG, replica_settled, replicas_acknowledge, wait_until

ACK_TIMEOUT_S = 0.5
SET_LUA = "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]"


@dataclasses.dataclass
class Pair:
    primary: RedisServer
    replica: RedisServer

    def pause_replica(self) -> None:
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGSTOP)

    def resume_replica(self) -> None:
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGCONT)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    primary = start_redis_server(tmp_path / "primary", port=free_port(), extra_config=NODE_CONFIG)
    port = primary.url.rsplit(":", 1)[1].split("/")[0]
    replica_port = free_port()
    replica = start_redis_server(
        tmp_path / "replica", port=replica_port, extra_config=(f"replicaof 127.0.0.1 {port}",)
    )
    both = Pair(primary, replica)
    wait_until(lambda: replica_settled(replica_port), 20.0, "the replica")
    wait_until(lambda: replicas_acknowledge(int(port), 1), 20.0, "the replica's first ACK")
    yield both
    both.resume_replica()
    replica.stop(5.0)
    primary.stop(5.0)


async def test_each_call_returns_only_once_the_replica_holds_it(pair: Pair) -> None:
    """200 concurrent script calls through a batcher with ReplicasAck(1): when a call returns,
    its write is already on the replica; one WAIT serves a whole batch, not one per call."""
    client = Redis.from_url(pair.primary.url)
    replica = Redis.from_url(pair.replica.url, max_connections=256)
    batcher = ScriptBatcher(
        PipelinedRedis(pair.primary.url), replicas_ack=ReplicasAck(1, ACK_TIMEOUT_S)
    )
    script = client.register_script(SET_LUA)  # loaded by the batcher on its NOSCRIPT
    await client.config_resetstat()

    async def one(n: int) -> None:
        assert await batcher.call(script, [f"k{n}"], [f"v{n}"]) == f"v{n}".encode()
        assert await replica.get(f"k{n}") == f"v{n}".encode()

    try:
        await asyncio.gather(*(one(n) for n in range(200)))
        stats = await client.info("commandstats")
        waits = stats["cmdstat_wait"]["calls"]
        assert 1 <= waits < 200, waits
    finally:
        await batcher.close()
        await client.aclose()
        await replica.aclose()


async def test_a_replica_that_does_not_answer_makes_the_call_fail_as_not_replicated(
    pair: Pair,
) -> None:
    """With the replica paused, a call fails with NotReplicated after the ack timeout, which
    the hub answers as 503 saying the write is stored and a retry is safe; once the replica is
    back, calls succeed again on the same batcher."""
    client = Redis.from_url(pair.primary.url)
    batcher = ScriptBatcher(
        PipelinedRedis(pair.primary.url), replicas_ack=ReplicasAck(1, ACK_TIMEOUT_S)
    )
    script = client.register_script(SET_LUA)
    try:
        assert await batcher.call(script, ["before"], ["1"]) == b"1"
        pair.pause_replica()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(NotReplicated) as refused:
            await batcher.call(script, ["during"], ["2"])
        assert ACK_TIMEOUT_S * 0.9 <= loop.time() - started < ACK_TIMEOUT_S + 2.0
        assert refused.value.acked == 0
        assert await client.get("during") == b"2"  # on the primary: a retry must be idempotent
        answer = store_unavailable(refused.value)
        assert answer is not None and "is stored" in answer.message
        assert "again is safe" in answer.message
        pair.resume_replica()
        assert await batcher.call(script, ["after"], ["3"]) == b"3"
    finally:
        pair.resume_replica()
        await batcher.close()
        await client.aclose()


@pytest.fixture
async def acked_api(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet, pair: Pair
) -> AsyncIterator[Api]:
    acked = dataclasses.replace(
        settings,
        redis_url=pair.primary.url,
        min_replicas_ack=1,
        replicas_ack_timeout_s=ACK_TIMEOUT_S,
    )
    client = await aiohttp_client(create_app(acked, schema_set))
    api = Api(client)
    await api.add_node("al-cert", "AL")
    yield api


async def test_a_post_waits_for_the_replica_and_a_retry_after_503_is_safe(
    acked_api: Api, pair: Pair
) -> None:
    """POST /v1/alerts with MIN_REPLICAS_ACK=1: 201 once the replica holds the alert; with
    the replica paused, 503 with Retry-After 1 and a message saying it is stored; the same
    post again once the replica is back: 200 `unchanged`, same hub id, stored once."""
    status, body = await acked_api.post("al-cert", unique_threat("w-1"))
    assert status == 201, body
    replica = redis.Redis.from_url(pair.replica.url)
    try:
        assert replica.exists(Keys().alert(body["hub_id"])) == 1  # there when the 201 came
    finally:
        replica.close()
    pair.pause_replica()
    resp = await acked_api.client.post(
        "/v1/alerts", json=unique_threat("w-2"), headers=acked_api.auth("al-cert")
    )
    refused = await resp.json()
    assert resp.status == 503 and resp.headers["Retry-After"] == "1", refused
    assert refused["error"] == "unavailable" and "is stored" in refused["message"]
    pair.resume_replica()
    status, again = await acked_api.post("al-cert", unique_threat("w-2"))
    assert (status, again["status"]) == (200, "unchanged"), again
    status, third = await acked_api.post("al-cert", unique_threat("w-2"))
    assert (status, third["hub_id"]) == (200, again["hub_id"])


async def test_a_retraction_waits_for_the_replica_too(acked_api: Api, pair: Pair) -> None:
    """A retraction is answered 200 only once the replica holds it: with the replica paused,
    503 saying it is stored; the same retraction again once it is back: 200."""
    status, body = await acked_api.post("al-cert", unique_threat("r-1"))
    assert status == 201, body
    path = f"/v1/alerts/{body['hub_id']}/retract"
    pair.pause_replica()
    resp = await acked_api.client.post(path, headers=acked_api.auth("al-cert"))
    refused = await resp.json()
    assert resp.status == 503 and "is stored" in refused["message"], refused
    pair.resume_replica()
    resp = await acked_api.client.post(path, headers=acked_api.auth("al-cert"))
    assert resp.status == 200 and (await resp.json())["status"] == "retracted"


async def test_readyz_counts_the_replicas_the_setting_needs(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet, pair: Pair
) -> None:
    """readyz is 200 with as many replicas attached as MIN_REPLICAS_ACK asks, and 503 naming
    the shortfall with fewer."""
    for wanted, status in ((1, 200), (2, 503)):
        acked = dataclasses.replace(settings, redis_url=pair.primary.url, min_replicas_ack=wanted)
        client = await aiohttp_client(create_app(acked, schema_set))
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == status, (wanted, body)
        if status == 503:
            assert "1 of the 2 replicas" in body["message"]
        await client.close()


async def test_readyz_is_503_once_the_primary_is_demoted(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet, pair: Pair
) -> None:
    """A primary turned into a replica under a running hub still answers PING, but readyz says
    503: the hub cannot write there."""
    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, redis_url=pair.primary.url), schema_set)
    )
    assert (await client.get("/readyz")).status == 200
    replica_port = int(pair.replica.url.rsplit(":", 1)[1].split("/")[0])
    promote = redis.Redis.from_url(pair.replica.url)
    demote = redis.Redis.from_url(pair.primary.url)
    try:
        promote.replicaof("NO", "ONE")
        demote.replicaof("127.0.0.1", replica_port)
    finally:
        promote.close()
        demote.close()
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and "replica" in body["message"], body

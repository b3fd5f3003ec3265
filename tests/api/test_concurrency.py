"""Fifty concurrent posts of one content, from several nodes and several hub processes, make one
cluster with one `created`: the decision and the write are one atomic Redis step."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
import redis

from hub.store.keys import Keys
from tests.conftest import OPERATOR_TOKEN, threat_alert
from tests.hubproc import HubProcess

NODES = ("al-cert", "ba-cert", "me-cert", "mk-cert", "rs-cert")


@pytest.fixture
def hubs(redis_url: str, tmp_path: Path):
    env = {
        "ALERTHUB_REDIS_URL": redis_url,
        "ALERTHUB_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
        "ALERTHUB_RATE_LIMIT_PER_MINUTE": "100000",
        "ALERTHUB_LOG_LEVEL": "warning",
    }
    procs = [HubProcess(env=env, cwd=tmp_path) for _ in range(3)]
    for proc in procs:
        proc.start()
    yield procs
    for proc in procs:
        proc.stop()


@pytest.mark.timeout(120)
async def test_fifty_concurrent_posts_make_one_cluster(
    hubs: list[HubProcess], redis_url: str
) -> None:
    """50 posts of one content across 5 nodes and 3 processes: 1 created, 49 corroborated."""
    async with aiohttp.ClientSession() as session:
        tokens = {}
        for node in NODES:
            async with session.post(
                f"{hubs[0].base_url}/v1/nodes",
                json={
                    "id": node,
                    "name": node,
                    "country": node[:2].upper(),
                    "kind": "government",
                    "roles": ["publish", "subscribe"],
                },
                headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            ) as resp:
                assert resp.status == 201
                tokens[node] = (await resp.json())["token"]
        start = asyncio.Event()

        async def post(i: int) -> dict:
            node = NODES[i % len(NODES)]
            hub = hubs[i % len(hubs)]
            await start.wait()
            async with session.post(
                f"{hub.base_url}/v1/alerts",
                json=threat_alert(f"{node}-{i}", title=f"report {i}"),
                headers={"Authorization": f"Bearer {tokens[node]}"},
            ) as resp:
                assert resp.status == 201, await resp.text()
                return await resp.json()

        tasks = [asyncio.create_task(post(i)) for i in range(50)]
        start.set()
        answers = await asyncio.gather(*tasks)

    statuses = Counter(a["status"] for a in answers)
    assert statuses == {"created": 1, "corroborated": 49}
    assert len({a["cluster_id"] for a in answers}) == 1
    created = next(a for a in answers if a["status"] == "created")
    assert {a["duplicate_of"] for a in answers if a["status"] == "corroborated"} == {
        created["hub_id"]
    }
    client = redis.Redis.from_url(redis_url)
    try:
        keys = Keys()
        assert client.llen(keys.cluster(created["cluster_id"])) == 50
        types = Counter(f[b"type"] for _, f in client.xrange(keys.events))
        assert types == {b"created": 1, b"corroborated": 49, b"node_registered": len(NODES)}
    finally:
        client.close()

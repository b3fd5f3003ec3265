"""Redis unreachable or full: the hub answers 503, stores nothing half-written, and recovers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.embedded import RedisServer, free_port, start_redis_server
from hub.store.keys import Keys
from tests.conftest import Api, threat_alert


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path / "redis", port=free_port())
    yield server
    server.stop()


def other_alert(alert_id: str) -> dict:
    return threat_alert(alert_id, indicators=[{"type": "domain", "value": f"{alert_id}.example"}])


def stored_counts(url: str) -> tuple[int, int]:
    """Alerts stored, and alert entries in the event log (not the nodes' registrations)."""
    client = redis.Redis.from_url(url)
    try:
        logged = [f[b"type"] for _, f in client.xrange(Keys().events)]
        return client.zcard(Keys().recent), sum(t != b"node_registered" for t in logged)
    finally:
        client.close()


async def test_redis_down_is_503_then_recovers(
    aiohttp_client: Any,
    settings: Settings,
    schema_set: SchemaSet,
    own_redis: RedisServer,
    tmp_path: Path,
) -> None:
    """With Redis stopped: 503 unavailable and readyz 503; after a restart on the same data the
    earlier alert is there and the refused one is stored exactly once on retry."""
    app_settings = dataclasses.replace(settings, redis_url=own_redis.url)
    api = Api(await aiohttp_client(create_app(app_settings, schema_set)))
    await api.add_node("al-cert", "AL")
    status, first = await api.post("al-cert", threat_alert("before"))
    assert status == 201

    own_redis.stop()
    resp = await api.client.post(
        "/v1/alerts", json=other_alert("during"), headers=api.auth("al-cert")
    )
    assert resp.status == 503 and (await resp.json())["error"] == "unavailable"
    assert resp.headers["Retry-After"] == "1"  # a client that honours it comes back soon
    resp = await api.client.get("/readyz")
    assert resp.status == 503
    resp = await api.client.get("/healthz")
    assert resp.status == 200

    port = int(own_redis.url.rsplit(":", 1)[1].split("/")[0])
    restarted = start_redis_server(own_redis.data_dir, port=port)
    try:
        assert stored_counts(restarted.url) == (1, 1)
        status, again = await api.post("al-cert", other_alert("during"))
        assert status == 201 and again["status"] == "created"
        status, repeat = await api.post("al-cert", other_alert("during"))
        assert status == 200 and repeat["status"] == "unchanged"
        assert stored_counts(restarted.url) == (2, 2)
        status, _ = await api.get("al-cert", f"/v1/alerts/{first['hub_id']}")
        assert status == 200
    finally:
        restarted.stop()


async def test_redis_at_maxmemory_is_503_and_nothing_half_written(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet, own_redis: RedisServer
) -> None:
    """When Redis refuses writes for memory, posts are 503 and no partial record appears."""
    app_settings = dataclasses.replace(settings, redis_url=own_redis.url)
    api = Api(await aiohttp_client(create_app(app_settings, schema_set)))
    await api.add_node("al-cert", "AL")
    client = redis.Redis.from_url(own_redis.url)
    try:
        before = client.dbsize()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", client.info("memory")["used_memory"] // 2)
        status, body = await api.post("al-cert", threat_alert("full"))
        assert status == 503 and body["error"] == "unavailable"
        assert client.dbsize() == before
        assert stored_counts(own_redis.url) == (0, 0)
        client.config_set("maxmemory", 0)
        status, _ = await api.post("al-cert", threat_alert("full"))
        assert status == 201
    finally:
        client.close()

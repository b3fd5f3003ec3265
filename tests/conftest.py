"""A real redis-server for the whole session on a free loopback port; a clean keyspace per test.

ALERTHUB_TEST_REDIS_SERVER=/usr/bin/redis-server runs the servers the tests start themselves
(this one, the fault tests' own, the Sentinel deployments) on that binary instead of the
embedded 6.2 (CI's second pass: Debian's Redis 7)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store import embedded
from hub.store.embedded import RedisServer, free_port, start_redis_server
from tests.receivers import Receiver

OPERATOR_TOKEN = "test-operator-token-0123456789"
EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"


def pytest_configure(config: pytest.Config) -> None:
    binary = os.environ.get("ALERTHUB_TEST_REDIS_SERVER")
    if binary:
        embedded.find_redis_server = lambda: binary  # every start_redis_server looks it up


def pytest_report_header(config: pytest.Config) -> str:
    binary = embedded.find_redis_server()
    shown = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return f"redis-server: {binary} ({shown.stdout.strip()})"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path_factory.mktemp("redis"), port=free_port())
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def schema_set() -> SchemaSet:
    return SchemaSet()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        bootstrap_token=OPERATOR_TOKEN,
        rate_limit_per_minute=100_000,
    )


class Api:
    """A test client that knows the operator token and the tokens of the nodes it added."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.tokens: dict[str, str] = {"operator": OPERATOR_TOKEN}

    def auth(self, node: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[node]}"}

    async def add_node(
        self,
        node_id: str,
        country: str = "RS",
        kind: str = "government",
        roles: tuple[str, ...] = ("publish", "subscribe"),
        withhold_from: tuple[str, ...] = (),
    ) -> str:
        body = {
            "id": node_id,
            "name": f"Node {node_id}",
            "country": country,
            "kind": kind,
            "roles": list(roles),
            "defaults": {"withhold_from": list(withhold_from)},
        }
        resp = await self.client.post("/v1/nodes", json=body, headers=self.auth("operator"))
        assert resp.status == 201, await resp.text()
        self.tokens[node_id] = (await resp.json())["token"]
        return self.tokens[node_id]

    async def post(self, node: str, alert: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        resp = await self.client.post("/v1/alerts", json=alert, headers=self.auth(node))
        return resp.status, await resp.json()

    async def get(self, node: str, path: str) -> tuple[int, dict[str, Any]]:
        resp = await self.client.get(path, headers=self.auth(node))
        return resp.status, await resp.json()

    async def subscribe(
        self, node: str, delivery: dict[str, Any] | None = None, **filter_: Any
    ) -> dict[str, Any]:
        """A new subscription of `node` (pull unless `delivery` says otherwise), as created."""
        body = {"filter": filter_, "delivery": delivery or {"type": "pull"}}
        resp = await self.client.post("/v1/subscriptions", json=body, headers=self.auth(node))
        assert resp.status == 201, await resp.text()
        return await resp.json()

    async def feed(self, node: str, sub_id: str, after: str | None = None) -> list[dict[str, Any]]:
        path = f"/v1/subscriptions/{sub_id}/feed?limit=1000" + (f"&after={after}" if after else "")
        status, body = await self.get(node, path)
        assert status == 200, body
        return body["events"]

    async def wait_for_feed(
        self, node: str, sub_id: str, count: int, within: float = 10.0, last: str | None = None
    ) -> list[dict[str, Any]]:
        """The feed once it holds at least `count` events (fan-out runs in the background),
        the newest about hub id `last` if given; what it holds at the deadline otherwise."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            events = await self.feed(node, sub_id)
            done = len(events) >= count and (last is None or events[-1]["hub_id"] == last)
            if done or asyncio.get_running_loop().time() > deadline:
                return events
            await asyncio.sleep(0.02)


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings, schema_set: SchemaSet) -> AsyncIterator[Api]:
    client = await aiohttp_client(create_app(settings, schema_set))
    yield Api(client)


@pytest.fixture
def delivery_settings(settings: Settings) -> Settings:
    """Settings for delivery tests: receivers on loopback, a retry schedule of fractions of a
    second, a quick SSE heartbeat."""
    return dataclasses.replace(
        settings,
        allow_private_webhooks=True,
        retry_schedule=(0, 0.2, 0.2),
        sse_heartbeat_s=0.3,
        webhook_timeout_s=2.0,
    )


@pytest.fixture
async def dapi(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet
) -> AsyncIterator[Api]:
    """An Api on a hub with delivery_settings."""
    client = await aiohttp_client(create_app(delivery_settings, schema_set))
    yield Api(client)


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    """Webhook receivers a test starts and appends here; all stopped when it ends."""
    started: list[Receiver] = []
    yield started
    for receiver in started:
        await receiver.stop()


def load_example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / "alert" / "valid" / name).read_text())


def threat_alert(alert_id: str = "t-1", **changes: Any) -> dict[str, Any]:
    """API.md's threat example as a GREEN alert with id `alert_id`, changed by `changes`."""
    alert = load_example("api-threat-phishing.json")
    alert.update(id=alert_id, tlp="GREEN")
    alert.update(changes)
    return copy.deepcopy(alert)


def disinfo_alert(
    alert_id: str = "d-1",
    claim: str = "НАТО гомила трупе код Звечана",
    language: str = "sr-Cyrl",
    **changes: Any,
) -> dict[str, Any]:
    alert = {
        "id": alert_id,
        "kind": "disinformation",
        "title": "Fabricated claim of NATO troop build-up in northern Kosovo",
        "severity": "high",
        "confidence": 80,
        "tlp": "GREEN",
        "target_countries": ["XK", "RS"],
        "languages": [language],
        "observed_at": "2026-11-20T08:15:00Z",
        "narrative": "NATO prepares an offensive against Serbs in the north",
        "claims": [{"text": claim, "language": language}],
        "urls": ["https://news.example/article?id=77&utm_source=tg"],
    }
    alert.update(changes)
    return copy.deepcopy(alert)


def unique_threat(alert_id: str, **changes: Any) -> dict[str, Any]:
    """A GREEN threat alert whose content no other alert shares (so it starts a cluster)."""
    domain = f"{alert_id.lower().replace('_', '-')}.phish.example"
    alert = threat_alert(
        alert_id,
        indicators=[{"type": "domain", "value": domain}],
    )
    alert.update(changes)
    return alert

"""A hub app in this process, on a redis-server of its own in a temporary folder, read through
aiohttp's test client: for the benchmarks that time reads (listing, clusters, TAXII, the MISP
feed), where a hub in another process would add the network and a second interpreter to what
they measure. The rate limit is lifted: the benchmarks post tens of thousands of alerts."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings
from hub.store.embedded import free_port, start_redis_server

OPERATOR_TOKEN = "bench-operator-token-0123456789"


@asynccontextmanager
async def hub_client(prefix: str) -> AsyncIterator[TestClient]:
    """A test client of a fresh hub app, its Redis removed on the way out."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        folder = Path(tmp)
        server = start_redis_server(folder, port=free_port())
        try:
            settings = Settings(
                redis_url=server.url,
                bootstrap_token=OPERATOR_TOKEN,
                rate_limit_per_minute=10**7,
                data_dir=folder,
            )
            async with TestClient(TestServer(create_app(settings))) as client:
                yield client
        finally:
            server.stop()


async def add_node(
    client: TestClient,
    node_id: str,
    country: str,
    kind: str = "government",
    roles: Sequence[str] = ("publish", "subscribe"),
) -> dict[str, str]:
    """Register a node as the operator; its Authorization header."""
    body = {"id": node_id, "name": node_id, "country": country, "kind": kind, "roles": [*roles]}
    resp = await client.post(
        "/v1/nodes", json=body, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    )
    assert resp.status == 201, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}

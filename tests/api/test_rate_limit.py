"""Per-node rate limits answer 429 with Retry-After."""

from __future__ import annotations

import dataclasses
from typing import Any

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from tests.conftest import Api, threat_alert


async def test_over_the_rate_is_429_with_retry_after(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet
) -> None:
    """The request past the node's per-minute limit is a 429 with a Retry-After in seconds."""
    limited = dataclasses.replace(settings, rate_limit_per_minute=5)
    api = Api(await aiohttp_client(create_app(limited, schema_set)))
    await api.add_node("al-cert", "AL")
    statuses = []
    for i in range(6):
        resp = await api.client.post(
            "/v1/alerts", json=threat_alert(f"t-{i}"), headers=api.auth("al-cert")
        )
        statuses.append(resp.status)
        last = resp
    assert statuses[:5] == [201] * 5
    assert statuses[5] == 429
    assert (await last.json())["error"] == "rate_limited"
    assert 1 <= int(last.headers["Retry-After"]) <= 60


async def test_a_batch_counts_each_alert(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet
) -> None:
    """A batch larger than the node's remaining rate is a 429, not a way around the limit."""
    limited = dataclasses.replace(settings, rate_limit_per_minute=10)
    api = Api(await aiohttp_client(create_app(limited, schema_set)))
    await api.add_node("al-cert", "AL")
    alerts = [threat_alert(f"t-{i}") for i in range(20)]
    resp = await api.client.post(
        "/v1/alerts/batch", json={"alerts": alerts}, headers=api.auth("al-cert")
    )
    assert resp.status == 429
    assert "Retry-After" in resp.headers

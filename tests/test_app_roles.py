"""What each role serves and runs (hub/app.py): `delivery` serves only the probes and /metrics,
`api` runs no fan-out loop and says so on /readyz, and `all` serves every route of both."""

from __future__ import annotations

import dataclasses
from typing import Any

from hub.app import create_app
from hub.context import HUB
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from tests.conftest import OPERATOR_TOKEN, Api, unique_threat

PROBES_AND_METRICS = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


def routes(role: str) -> set[tuple[str, str]]:
    app = create_app(Settings(redis_url="redis://unused", role=role), SchemaSet())
    return {(r.method, r.resource.canonical) for r in app.router.routes()}


def test_delivery_serves_only_probes_and_metrics_and_api_serves_what_all_does() -> None:
    """The route tables: delivery = probes + /metrics; api = all (every route of the API)."""
    assert routes("delivery") == PROBES_AND_METRICS
    assert routes("api") == routes("all") > PROBES_AND_METRICS


async def test_delivery_role_answers_404_to_the_api(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet
) -> None:
    """A delivery process: /v1 paths are 404 in the hub's error shape; probes and metrics work,
    and its fan-out loop runs."""
    app = create_app(dataclasses.replace(settings, role="delivery"), schema_set)
    client = await aiohttp_client(app)
    for method, path in (("POST", "/v1/alerts"), ("GET", "/v1/schemas"), ("GET", "/status")):
        resp = await client.request(method, path)
        assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    ready = await client.get("/readyz")
    assert (await ready.json())["fanout"] == "running"
    metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert 'role="delivery"' in await metrics.text()


async def test_api_role_runs_no_fanout_and_is_ready(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet
) -> None:
    """An api process takes posts and is ready without a fan-out loop of its own."""
    app = create_app(dataclasses.replace(settings, role="api"), schema_set)
    api = Api(await aiohttp_client(app))
    await api.add_node("rs-cert")
    status, body = await api.post("rs-cert", unique_threat("api-1"))
    assert status == 201, body
    assert app[HUB].fanout_task is None
    ready = await api.client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready", "redis": "ok", "fanout": "none", "role": "api"}

"""GET /metrics against a real Redis: operator only; request, delivery and Redis-derived metrics
in the Prometheus text format, parsed the way a scraper parses them; the status document behind
the Redis-derived gauges read once per snapshot period, however many scrape."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.app import create_app
from hub.context import HUB
from hub.ingest.validation import SchemaSet
from hub.ops.metrics import Metrics, SnapshotCache
from hub.settings import Settings
from hub.store.embedded import RedisServer, free_port, start_redis_server
from tests.conftest import Api, threat_alert, unique_threat
from tests.receivers import Receiver

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
REQUESTS = "alerthub_http_requests_total"
DURATIONS = "alerthub_http_request_duration_seconds_count"
DELIVERIES = "alerthub_webhook_deliveries_total"
FEED_LAG = "alerthub_subscription_feed_lag_events"
STATUS_READS = "alerthub_metrics_status_reads_total"
SNAPSHOT_AGE = "alerthub_metrics_snapshot_age_seconds"
ROUNDTRIPS = "alerthub_redis_roundtrip_seconds_count"


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def has(samples: Samples, name: str, **labels: str) -> bool:
    return (name, tuple(sorted(labels.items()))) in samples


def uncached(api: Api) -> Api:
    """`api` with its status snapshot read afresh at every scrape, for tests that watch the
    Redis-derived gauges change."""
    api.client.app[HUB].metrics.snapshots.ttl_s = 0
    return api


async def scrape(api: Api) -> Samples:
    resp = await api.client.get("/metrics", headers=api.auth("operator"))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(await resp.text())


async def scrape_until(
    api: Api, condition: Callable[[Samples], bool], within: float = 10.0
) -> Samples:
    """The first scrape for which `condition` holds; AssertionError after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        samples = await scrape(api)
        if condition(samples):
            return samples
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"metrics condition not met within {within} s")
        await asyncio.sleep(0.02)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path / "redis", port=free_port())
    yield server
    server.stop()


async def test_metrics_are_for_the_operator_only(api: Api) -> None:
    """The per-subscription gauges tell who received what: no token is 401, a node without the
    operator role 403, and neither response carries a metric."""
    await api.add_node("al-cert", country="AL")
    await api.subscribe("al-cert")
    for headers, expected in (
        ({}, 401),
        ({"Authorization": "Bearer not-a-hub-token"}, 401),
        (api.auth("al-cert"), 403),
    ):
        resp = await api.client.get("/metrics", headers=headers)
        assert resp.status == expected, headers
        assert "alerthub_" not in await resp.text()
    samples = await scrape(api)
    assert any(name == FEED_LAG for name, _ in samples)


async def test_two_scrapes_within_the_snapshot_period_read_redis_once(api: Api) -> None:
    """The second scrape reuses the first one's status document (older, and without the alert
    posted in between) while the process's own counters and the PING round trip are current."""
    await api.add_node("al-cert", country="AL")
    first = await scrape(api)
    status, _ = await api.post("al-cert", threat_alert("t-1"))
    assert status == 201
    await asyncio.sleep(0.05)
    second = await scrape(api)
    assert value(first, STATUS_READS) == value(second, STATUS_READS) == 1
    assert value(second, SNAPSHOT_AGE) >= value(first, SNAPSHOT_AGE) + 0.05
    assert value(second, ROUNDTRIPS) - value(first, ROUNDTRIPS) == 1
    assert moved(first, second, "alerthub_alerts_total", outcome="created", kind="threat") == 1
    assert value(second, "alerthub_ingest_total", outcome="created") == 0

    uncached(api)
    third = await scrape(api)
    assert value(third, STATUS_READS) == 2
    assert value(third, "alerthub_ingest_total", outcome="created") == 1


async def test_concurrent_scrapes_share_one_read(api: Api) -> None:
    """Scrapes that arrive together wait for one status read instead of each starting one."""
    await asyncio.gather(*(scrape(api) for _ in range(5)))
    assert value(await scrape(api), STATUS_READS) == 1


async def test_snapshot_cache_is_single_flight_and_keeps_failures_briefly() -> None:
    """Through the cache's seams (the read it is given, its clock): waiters share one read, a
    waiter that gives up does not cancel it for the others, a read Redis did not answer is kept
    only `failed_ttl_s`, and one that raised is not kept."""
    now = [100.0]
    cache = SnapshotCache(ttl_s=5.0, failed_ttl_s=1.0, clock=lambda: now[0])
    release = asyncio.Event()
    reads: list[Any] = [{"redis": {"reachable": True}}]
    calls = 0

    async def read() -> dict[str, Any] | None:
        nonlocal calls
        calls += 1
        await release.wait()
        result = reads.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    waiters = [asyncio.ensure_future(cache.get(read)) for _ in range(3)]
    await asyncio.sleep(0.01)
    waiters[0].cancel()
    release.set()
    results = await asyncio.gather(*waiters[1:])
    assert calls == 1
    assert results == [({"redis": {"reachable": True}}, 0.0)] * 2
    now[0] += 4.9
    assert (await cache.get(read))[1] == pytest.approx(4.9)
    assert calls == 1

    now[0] += 0.2  # past ttl_s: read again, and Redis does not answer
    reads.append(None)
    assert await cache.get(read) == (None, 0.0)
    now[0] += 0.5
    assert await cache.get(read) == (None, pytest.approx(0.5))
    assert calls == 2
    now[0] += 0.6  # past failed_ttl_s
    reads.append(RuntimeError("boom"))
    with pytest.raises(RuntimeError):
        await cache.get(read)
    reads.append({"redis": {"reachable": True}, "n": 4})
    assert (await cache.get(read))[0] == {"redis": {"reachable": True}, "n": 4}
    assert calls == 4


def test_label_children_are_cached_by_label_value() -> None:
    """Each label combination's children are made once; methods outside METHODS (any string,
    with aiohttp's pure-Python parser) share the "other" entry, so the cache cannot grow."""
    metrics = Metrics()
    for method in ("PROPFIND", "BREW", "X" * 50, "GET"):
        metrics.observe_request("unmatched", method, 405, 0.001)
    for _ in range(3):
        metrics.alert("created", "threat")
        metrics.delivery("delivered")
    metrics.alert("rejected", "unknown", 2)
    assert set(metrics._request_children) == {
        ("unmatched", "other", 405),
        ("unmatched", "GET", 405),
    }
    assert set(metrics._alert_children) == {("created", "threat"), ("rejected", "unknown")}
    assert set(metrics._delivery_children) == {"delivered"}
    samples = parse(metrics.render(None).decode())
    assert value(samples, REQUESTS, route="unmatched", method="other", status="405") == 3
    assert value(samples, "alerthub_alerts_total", outcome="created", kind="threat") == 3
    assert value(samples, "alerthub_alerts_total", outcome="rejected", kind="unknown") == 2
    assert value(samples, DELIVERIES, outcome="delivered") == 3


def test_each_metrics_object_has_a_registry_of_its_own() -> None:
    """Two apps in one process (as in the tests) count separately and never collide."""
    first, second = Metrics(), Metrics()
    first.observe_request("/healthz", "GET", 200, 0.001)
    first.delivery("delivered")
    labels = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(parse(first.render(None).decode()), REQUESTS, **labels) == 1
    assert not has(parse(second.render(None).decode()), REQUESTS, **labels)


async def test_requests_are_counted_by_route_pattern_method_and_final_status(api: Api) -> None:
    """Each request moves its (route pattern, method, status) counter and duration histogram
    once, error responses included; the route label is the pattern, never the concrete path."""
    await api.add_node("al-cert", country="AL")
    before = await scrape(api)
    status, posted = await api.post("al-cert", threat_alert("t-1"))
    assert status == 201
    for _ in range(2):
        code, _ = await api.get("al-cert", f"/v1/alerts/{posted['hub_id']}")
        assert code == 200
    status, _ = await api.post("al-cert", {"id": "broken"})
    assert status == 422
    after = await scrape(api)

    one = "/v1/alerts/{hub_id}"
    assert moved(before, after, REQUESTS, route="/v1/alerts", method="POST", status="201") == 1
    assert moved(before, after, REQUESTS, route="/v1/alerts", method="POST", status="422") == 1
    assert moved(before, after, REQUESTS, route=one, method="GET", status="200") == 2
    assert moved(before, after, DURATIONS, route=one, method="GET") == 2
    assert moved(before, after, DURATIONS, route="/v1/alerts", method="POST") == 2
    # The first scrape is counted by the time of the second.
    assert moved(before, after, REQUESTS, route="/metrics", method="GET", status="200") == 1
    routes = {dict(labels).get("route") for name, labels in after if name == REQUESTS}
    assert not any(posted["hub_id"] in (route or "") for route in routes)


async def test_alert_outcomes_are_counted_by_outcome_and_kind(api: Api) -> None:
    """A new report counts `created`, the same content from another node `corroborated`, a
    refused body `rejected`, each once and under the alert's kind."""
    uncached(api)
    await api.add_node("al-cert", country="AL")
    await api.add_node("me-cert", country="ME")
    before = await scrape(api)
    status, _ = await api.post("al-cert", threat_alert("al-1"))
    assert status == 201
    status, body = await api.post("me-cert", threat_alert("me-9", title="Other words"))
    assert status == 201 and body["status"] == "corroborated"
    status, _ = await api.post("al-cert", threat_alert("al-2", severity="apocalyptic"))
    assert status == 422
    after = await scrape(api)
    alerts = "alerthub_alerts_total"
    assert moved(before, after, alerts, outcome="created", kind="threat") == 1
    assert moved(before, after, alerts, outcome="corroborated", kind="threat") == 1
    assert moved(before, after, alerts, outcome="rejected", kind="threat") == 1
    assert value(after, "alerthub_ingest_total", outcome="created") == 1
    assert value(after, "alerthub_ingest_total", outcome="corroborated") == 1


async def test_unknown_paths_and_methods_share_one_bounded_label_set(api: Api) -> None:
    """404s of unknown paths count under route="unmatched", and unknown methods as "other", so
    a client probing random URLs cannot grow the number of series."""
    before = await scrape(api)
    for path in ("/nope", "/wp-admin/setup.php", "/v1/alerts/x/y/z"):
        resp = await api.client.get(path)
        assert resp.status == 404
    resp = await api.client.request("PROPFIND", "/healthz")
    assert resp.status == 405
    after = await scrape(api)
    assert moved(before, after, REQUESTS, route="unmatched", method="GET", status="404") == 3
    assert value(after, REQUESTS, route="unmatched", method="other", status="405") == 1
    routes = {dict(labels)["route"] for name, labels in after if name == REQUESTS}
    assert routes.isdisjoint({"/nope", "/wp-admin/setup.php", "/v1/alerts/x/y/z"})


async def test_webhook_delivery_outcomes_are_counted(dapi: Api, receivers: list[Receiver]) -> None:
    """A refused POST then its successful retry to a real loopback receiver count one `retry`
    and one `delivered`, and the subscription's feed lag returns to 0."""
    uncached(dapi)
    await dapi.add_node("al-cert", country="AL")
    await dapi.add_node("me-cert", country="ME")
    receiver = await Receiver(answers=[500]).start()
    receivers.append(receiver)
    created = await dapi.subscribe("me-cert", {"type": "webhook", "url": receiver.url})
    before = await scrape(dapi)
    status, _ = await dapi.post("al-cert", threat_alert("t-1"))
    assert status == 201
    await receiver.wait_for(lambda r: len(r.deliveries) == 2)

    def delivered(samples: Samples) -> bool:
        return (
            moved(before, samples, DELIVERIES, outcome="delivered") == 1
            and value(samples, FEED_LAG, subscription=created["id"]) == 0
        )

    after = await scrape_until(dapi, delivered)
    assert moved(before, after, DELIVERIES, outcome="retry") == 1
    assert value(after, DELIVERIES, outcome="dead") == 0
    assert has(after, "alerthub_subscription_dead_letters", subscription=created["id"])
    assert has(after, "alerthub_subscription_consecutive_failures", subscription=created["id"])


async def test_feed_lag_gauge_appears_and_goes_with_its_subscription(api: Api) -> None:
    """A pull subscription nobody reads shows its unread events as feed lag; once deleted, its
    series is gone from the next read of the status (gauges are rebuilt from each read)."""
    uncached(api)
    await api.add_node("al-cert", country="AL")
    await api.add_node("me-cert", country="ME")
    sub = await api.subscribe("me-cert")
    for n in range(2):
        status, _ = await api.post("al-cert", unique_threat(f"t-{n}"))
        assert status == 201
    await scrape_until(api, lambda s: value(s, FEED_LAG, subscription=sub["id"]) == 2)

    resp = await api.client.delete(f"/v1/subscriptions/{sub['id']}", headers=api.auth("me-cert"))
    assert resp.status in (200, 204), await resp.text()
    after = await scrape(api)
    assert not any(dict(labels).get("subscription") == sub["id"] for _, labels in after)
    assert has(after, "alerthub_fanout_lag_events")


async def test_metrics_still_answer_when_redis_is_down(
    aiohttp_client: Any, settings: Settings, schema_set: SchemaSet, own_redis: RedisServer
) -> None:
    """With Redis stopped, /metrics answers 200 (to the bootstrap operator token, which needs no
    Redis) with the process's counters and alerthub_redis_up 0, not the gauges of the snapshot
    kept from before; while it runs, each scrape times one PING round trip, cached or not."""
    app_settings = dataclasses.replace(settings, redis_url=own_redis.url)
    api = Api(await aiohttp_client(create_app(app_settings, schema_set)))
    first = await scrape(api)
    second = await scrape(api)
    assert value(first, "alerthub_redis_up") == 1
    assert value(second, ROUNDTRIPS) - value(first, ROUNDTRIPS) == 1
    assert value(second, STATUS_READS) == 1 and has(second, SNAPSHOT_AGE)

    own_redis.stop()
    down = await scrape(api)
    assert value(down, "alerthub_redis_up") == 0
    assert value(down, REQUESTS, route="/metrics", method="GET", status="200") == 2
    assert value(down, ROUNDTRIPS) == value(second, ROUNDTRIPS)
    assert not has(down, SNAPSHOT_AGE)
    assert not any(name.startswith("alerthub_subscription_") for name, _ in down)

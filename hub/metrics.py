"""Prometheus metrics: process counters kept as requests, alerts and deliveries happen, and
gauges computed from Redis (through `hub.status`) at each scrape. Each `Metrics` owns its own
registry, so several apps in one process (the tests) never share or collide."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

UNMATCHED = "unmatched"
# Anything else a client sends as a method is one label value, so it cannot grow the series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# Summing over `outcome` should count each post once, so the sum `accepted` is left out.
INGEST_OUTCOMES = ("created", "corroborated", "updated", "retracted", "rejected")


def route_of(request: web.Request) -> str:
    """The matched route's pattern (`/v1/alerts/{hub_id}`), or `unmatched` for a path or method
    no route serves: a bounded label, whatever paths clients ask for."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


class Metrics:
    """The process's counters and histograms, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "alerthub_http_requests",
            "HTTP requests answered, by route pattern, method and final status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "alerthub_http_request_duration_seconds",
            "Time from the request reaching the hub to its response (whole stream for SSE).",
            ["route", "method"],
            registry=self.registry,
        )
        self._alerts = Counter(
            "alerthub_alerts",
            "Alert posts handled by this process, by outcome and kind.",
            ["outcome", "kind"],
            registry=self.registry,
        )
        self._deliveries = Counter(
            "alerthub_webhook_deliveries",
            "Webhook event deliveries attempted by this process, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.redis_roundtrip = Histogram(
            "alerthub_redis_roundtrip_seconds",
            "Redis PING round trips, timed at each scrape.",
            buckets=REDIS_BUCKETS,
            registry=self.registry,
        )
        # labels() takes a lock and builds a key on every call; a dict hit is half the cost
        # on the ingest path. Bounded: routes x methods x statuses the hub answers.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            label = method if method in METHODS else "other"
            children = (
                self._requests.labels(route, label, str(status)),
                self._duration.labels(route, label),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def alert(self, outcome: str, kind: str, count: int = 1) -> None:
        """Count alert posts: created, corroborated, updated, unchanged, retracted, rejected."""
        self._alerts.labels(outcome, kind).inc(count)

    def delivery(self, outcome: str) -> None:
        """Count one webhook delivery attempt: delivered, retry, dead, skipped, lost."""
        self._deliveries.labels(outcome).inc()

    def render(self, status: dict[str, Any] | None) -> bytes:
        """The exposition text: this process's metrics, then the gauges of `status` (the
        `hub.status.collect_status` document, None when it could not be read)."""
        return generate_latest(self.registry) + generate_latest(ScrapeSnapshot(status))


class ScrapeSnapshot:
    """A collector over one status document. Built afresh for each scrape, so a subscription
    deleted since the last scrape simply is not there, and concurrent scrapes cannot mix."""

    def __init__(self, status: dict[str, Any] | None) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status or {}
        redis = status.get("redis") or {}
        up = GaugeMetricFamily("alerthub_redis_up", "1 when Redis answered at this scrape.")
        up.add_metric([], 1.0 if redis.get("reachable") else 0.0)
        yield up
        if not redis.get("reachable"):
            return
        if redis.get("used_memory") is not None:
            yield GaugeMetricFamily(
                "alerthub_redis_used_memory_bytes",
                "Memory Redis reports in use.",
                value=float(redis["used_memory"]),
            )
        yield from _ingest(status.get("ingest"))
        yield from _subscriptions(status.get("subscriptions"))
        fanout = status.get("fanout")
        if fanout is not None:
            yield GaugeMetricFamily(
                "alerthub_fanout_lag_events",
                "Alert events not yet fanned out to subscription feeds.",
                value=float(fanout.get("lag") or 0),
            )


def _ingest(ingest: dict[str, Any] | None) -> Iterator[Metric]:
    if ingest is None:
        return
    total = CounterMetricFamily(
        "alerthub_ingest",
        "Alert posts the whole hub (every process) has handled, by outcome; kept in Redis.",
        labels=["outcome"],
    )
    for outcome in INGEST_OUTCOMES:
        total.add_metric([outcome], float(ingest.get(outcome) or 0))
    yield total
    reasons = ingest.get("rejected_by_reason") or {}
    rejected = CounterMetricFamily(
        "alerthub_ingest_rejected",
        "Alert posts the whole hub has refused, by reason; kept in Redis.",
        labels=["reason"],
    )
    for reason, count in sorted(reasons.items()):
        rejected.add_metric([reason], float(count))
    yield rejected


def _subscriptions(subs: list[dict[str, Any]] | None) -> Iterator[Metric]:
    if subs is None:
        return
    families = {
        "lag": GaugeMetricFamily(
            "alerthub_subscription_feed_lag_events",
            "Events in a subscription's feed after its delivered or last-read position.",
            labels=["subscription"],
        ),
        "dead_letters": GaugeMetricFamily(
            "alerthub_subscription_dead_letters",
            "Events a webhook subscription gave up on after its whole retry schedule.",
            labels=["subscription"],
        ),
        "consecutive_failures": GaugeMetricFamily(
            "alerthub_subscription_consecutive_failures",
            "Webhook attempts that failed since the subscription's last success.",
            labels=["subscription"],
        ),
        "retrying": GaugeMetricFamily(
            "alerthub_subscription_retrying_events",
            "Events of a webhook subscription waiting for a retry.",
            labels=["subscription"],
        ),
    }
    for sub in subs:
        for field, family in families.items():
            family.add_metric([sub["id"]], float(sub.get(field) or 0))
    yield from families.values()

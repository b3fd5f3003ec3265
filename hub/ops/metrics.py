"""Prometheus metrics: process counters kept as requests, alerts and deliveries happen, and
gauges computed from Redis (through `hub.status`), from a status document each process reads at
most every SNAPSHOT_TTL_S and shares between the scrapes that come meanwhile. Each `Metrics` owns
its own registry, so several apps in one process (the tests) never share or collide.

Under `serve --workers N` (hub/cli_workers.py) the counters and histograms are prometheus_client's
multiprocess values, kept in files of a folder the workers share, and a scrape answers their sum
over every worker that has run since the arbiter started. Each worker's share of the delivery work
is a live gauge there too, written every SHARE_PUBLISH_S and summed over the live workers. What is
read at the scrape (the gauges of the status document, the pid) is the answering worker's own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

UNMATCHED = "unmatched"
# Anything else a client sends as a method is one label value, so it cannot grow the series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# Summing over `outcome` should count each post once, so the sum `accepted` is left out.
INGEST_OUTCOMES = ("created", "corroborated", "updated", "retracted", "rejected")
# The status document costs dozens of Redis commands and an XRANGE of up to 10,000 events: one
# read serves every scrape of the next few seconds. A read that failed is retried sooner.
SNAPSHOT_TTL_S = 5.0
FAILED_SNAPSHOT_TTL_S = 1.0
# Under `serve --workers N`, how often each worker writes its delivery share for the others'
# scrapes to sum (the membership beat's period: the share changes no faster).
SHARE_PUBLISH_S = 1.0
SHARDS_HELD = "alerthub_fanout_shards_held"
SHARDS_HELD_HELP = "Fan-out shards this process fans out now (it holds their leases)."
WORKERS = "alerthub_delivery_workers"
WORKERS_HELP = "Webhook and e-mail delivery workers this process runs now (its share)."

Status = dict[str, Any]


def route_of(request: web.Request) -> str:
    """The matched route's pattern (`/v1/alerts/{hub_id}`), or `unmatched` for a path or method
    no route serves: a bounded label, whatever paths clients ask for."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


class Metrics:
    """The process's counters and histograms, in a registry of its own; with `shared_dir` (the
    multiprocess folder of `serve --workers N`) they are rendered summed over the workers."""

    def __init__(self, role: str = "all", shared_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        # Which process answered this scrape: with `serve --workers N` each scrape reaches one
        # worker, and the counters are then the sum over the workers (docs/operations.md).
        process = Info(
            "alerthub_process",
            "The hub process that answered this scrape: its pid and role.",
            registry=self.registry,
        )
        process.info({"pid": str(os.getpid()), "role": role})
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
        self.status_reads = Counter(
            "alerthub_metrics_status_reads",
            "Status documents this process read from Redis to answer scrapes (at most one per "
            "snapshot period, shared by the scrapes that come meanwhile).",
            registry=self.registry,
        )
        self._delivery_share = DeliveryShare(shared=shared_dir is not None)
        self._exposed = [self.registry]
        if shared_dir is None:
            self.registry.register(self._delivery_share)
        else:
            # A scrape shows the counters and the delivery shares summed over the files every
            # worker keeps in `shared_dir`, and beside them the answering process's pid:
            # multiprocess mode does not sum an Info.
            own, summed = CollectorRegistry(), CollectorRegistry()
            own.register(process)
            MultiProcessCollector(summed, path=shared_dir)
            self._exposed = [own, summed]
        self.snapshots = SnapshotCache()
        # labels() takes a lock and builds a key on every call; a dict hit is half the cost
        # on the ingest path. Keyed by the label values, never by what a client sent, so they
        # stay bounded: routes x METHODS + "other" x statuses the hub answers; outcomes x kinds;
        # delivery outcomes.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._alert_children: dict[tuple[str, str], Any] = {}
        self._delivery_children: dict[str, Any] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        label = method if method in METHODS else "other"
        key = (route, label, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self._requests.labels(route, label, str(status)),
                self._duration.labels(route, label),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def alert(self, outcome: str, kind: str, count: int = 1) -> None:
        """Count alert posts: created, corroborated, updated, unchanged, retracted, rejected."""
        key = (outcome, kind)
        child = self._alert_children.get(key)
        if child is None:
            child = self._alert_children[key] = self._alerts.labels(outcome, kind)
        child.inc(count)

    def delivery(self, outcome: str) -> None:
        """Count one webhook delivery attempt: delivered, retry, dead, skipped, lost."""
        child = self._delivery_children.get(outcome)
        if child is None:
            child = self._delivery_children[outcome] = self._deliveries.labels(outcome)
        child.inc()

    def watch_delivery(self, shards_held: Callable[[], int], workers: Callable[[], int]) -> None:
        """Report this process's share of the delivery work, read at each scrape."""
        self._delivery_share.shards_held = shards_held
        self._delivery_share.workers = workers

    async def publish_delivery(self, stopping: asyncio.Event) -> None:
        """Under `serve --workers N`, write this process's delivery share every SHARE_PUBLISH_S
        until `stopping`, for the scrapes any worker answers; without workers, return at once."""
        if not self._delivery_share.shared:
            return
        while not stopping.is_set():
            self._delivery_share.publish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), SHARE_PUBLISH_S)

    def render(self, status: Status | None, age_s: float | None = None) -> bytes:
        """The exposition text: this process's metrics, then the gauges of `status` (the
        `hub.status.collect_status` document, None when Redis did not answer), read `age_s`
        seconds ago."""
        self._delivery_share.publish()
        metrics = b"".join(generate_latest(registry) for registry in self._exposed)
        return metrics + generate_latest(ScrapeSnapshot(status, age_s))


def _none() -> int:
    return 0


class DeliveryShare:
    """The gauges of this process's share of the delivery work, read from the functions
    `Metrics.watch_delivery` gives it (0 until then). Alone, a collector read at each scrape;
    `shared` (multiprocess mode, which cannot read a function), live-summed gauges that
    `publish` writes."""

    def __init__(self, shared: bool) -> None:
        self.shared = shared
        self.shards_held: Callable[[], int] = _none
        self.workers: Callable[[], int] = _none
        self._gauges: tuple[Gauge, Gauge] | None = None
        if shared:
            # Registered nowhere: the multiprocess collector reads them from this process's
            # file, and drops that file when the process is gone (mark_process_dead).
            self._gauges = (
                Gauge(SHARDS_HELD, SHARDS_HELD_HELP, registry=None, multiprocess_mode="livesum"),
                Gauge(WORKERS, WORKERS_HELP, registry=None, multiprocess_mode="livesum"),
            )

    def publish(self) -> None:
        if self._gauges is not None:
            self._gauges[0].set(self.shards_held())
            self._gauges[1].set(self.workers())

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(SHARDS_HELD, SHARDS_HELD_HELP, value=float(self.shards_held()))
        yield GaugeMetricFamily(WORKERS, WORKERS_HELP, value=float(self.workers()))


class SnapshotCache:
    """The status document of the last read, kept for `ttl_s` (`failed_ttl_s` when Redis did not
    answer), and single flight: scrapes that come while a read runs wait for that read rather
    than start their own. The read runs as a task of its own, so a scraper that hangs up does not
    cancel it for the others; a read that raised is not kept at all."""

    def __init__(
        self,
        ttl_s: float = SNAPSHOT_TTL_S,
        failed_ttl_s: float = FAILED_SNAPSHOT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.failed_ttl_s = failed_ttl_s
        self._clock = clock
        self._status: Status | None = None
        self._read_at: float | None = None
        self._failed = False
        self._pending: asyncio.Task[None] | None = None

    async def get(
        self, read: Callable[[], Awaitable[Status | None]]
    ) -> tuple[Status | None, float]:
        """The kept document and its age in seconds, after `read()` (a document, or None when
        Redis did not answer) if there is none or it is older than its time to live."""
        if not self._fresh():
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._read(read))
                self._pending.add_done_callback(_retrieve)
            await asyncio.shield(self._pending)
        assert self._read_at is not None  # the read above set it, or raised
        return self._status, max(0.0, self._clock() - self._read_at)

    def _fresh(self) -> bool:
        if self._read_at is None:
            return False
        ttl = self.failed_ttl_s if self._failed else self.ttl_s
        return self._clock() - self._read_at < ttl

    async def _read(self, read: Callable[[], Awaitable[Status | None]]) -> None:
        try:
            started = self._clock()
            status = await read()
            self._status, self._read_at = status, started
            self._failed = status is None or not (status.get("redis") or {}).get("reachable")
        finally:
            self._pending = None


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a read's exception as seen: every waiter got it already, or none was left."""
    if not task.cancelled():
        task.exception()


class ScrapeSnapshot:
    """A collector over one status document. Built afresh for each scrape from the document it
    is given, so a subscription deleted before that document was read simply is not there, and
    concurrent scrapes cannot mix."""

    def __init__(self, status: Status | None, age_s: float | None = None) -> None:
        self._status = status
        self._age_s = age_s

    def collect(self) -> Iterator[Metric]:
        status = self._status or {}
        redis = status.get("redis") or {}
        up = GaugeMetricFamily(
            "alerthub_redis_up",
            "1 when Redis answered this scrape's PING and the status document's read.",
        )
        up.add_metric([], 1.0 if redis.get("reachable") else 0.0)
        yield up
        if not redis.get("reachable"):
            return
        if self._age_s is not None:
            yield GaugeMetricFamily(
                "alerthub_metrics_snapshot_age_seconds",
                "How long ago the status document behind the Redis-derived gauges was read.",
                value=self._age_s,
            )
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

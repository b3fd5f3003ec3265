"""The services one hub process holds, reachable from every handler as `request.app[HUB]`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web
from redis.asyncio import Redis

from hub.auth import Authenticator, require_role
from hub.delivery.feed_news import FeedNews
from hub.delivery.feeds import FeedReader
from hub.delivery.subscriptions import SubscriptionStore
from hub.ingest.alert_views import AlertViews
from hub.ingest.cluster_views import ClusterViews
from hub.ingest.dedup import AlertStore
from hub.ingest.fact_checks import FactCheckStore
from hub.ingest.validation import SchemaSet
from hub.nodes import Node, NodeRegistry
from hub.ops.metrics import Metrics
from hub.settings import Settings
from hub.store.keys import Keys
from hub.store.scripts import Scripts


@dataclass(slots=True)
class Hub:
    settings: Settings
    schemas: SchemaSet
    redis: Redis
    keys: Keys
    scripts: Scripts
    auth: Authenticator
    nodes: NodeRegistry
    store: AlertStore
    views: AlertViews
    cursor_key: bytes
    subscriptions: SubscriptionStore
    feeds: FeedReader
    news: FeedNews
    fact_checks: FactCheckStore
    clusters: ClusterViews
    # Set when the process begins to stop: SSE streams and background workers end on it.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = field(default_factory=time.monotonic)
    # This process's fan-out loop (it fans out while it holds the lease, and waits otherwise):
    # /readyz reports a process whose loop has ended as not ready.
    fanout_task: asyncio.Task[None] | None = None
    metrics: Metrics = field(default_factory=Metrics)


HUB = web.AppKey("hub", Hub)


async def caller(request: web.Request, role: str | None = None) -> tuple[Hub, Node]:
    """The hub and the authenticated node behind `request`, which must hold `role` if given."""
    hub = request.app[HUB]
    node = await hub.auth.authenticate(request.headers.get("Authorization"))
    if role is not None:
        require_role(node, role)
    return hub, node

"""The background work of one hub process, by its role (settings.ROLES): feed wake-ups in every
role; fan-out, webhook and e-mail delivery (with digests) unless the role is `api`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hub.context import Hub
from hub.delivery.email_delivery import MailContext, relay_from
from hub.delivery.fanout import ShardFanout
from hub.delivery.fanout_shards import FanoutShards
from hub.delivery.fanout_view import FanoutView, LogWatcher
from hub.delivery.members import DeliveryMembers
from hub.delivery.webhook_supervisor import WebhookSupervisor
from hub.delivery.webhooks import Delivery, WebhookSender
from hub.store.batching import ScriptBatcher
from hub.store.leases import process_identity

SHUTDOWN_GRACE_S = 0.2


@contextlib.asynccontextmanager
async def background_work(hub: Hub, batcher: ScriptBatcher) -> AsyncIterator[None]:
    """Feed wake-ups (for SSE streams and webhook workers alike) and, unless the role is `api`,
    fan-out and webhook and e-mail delivery, for as long as the app runs. Every process of a
    role that delivers runs them; leases decide which process does which part of the work."""
    news_task = asyncio.create_task(hub.news.run(), name="feed-news")
    try:
        if hub.settings.role == "api":
            yield
        else:
            async with _delivery_work(hub, batcher):
                yield
    finally:
        hub.stopping.set()
        hub.news.wake_all()
        news_task.cancel()
        await asyncio.gather(news_task, return_exceptions=True)


@contextlib.asynccontextmanager
async def _delivery_work(hub: Hub, batcher: ScriptBatcher) -> AsyncIterator[None]:
    """The fan-out shards and the webhook supervisor (with e-mail when a relay is set), each
    taking this process's share among the live delivery processes."""
    owner = process_identity()
    sender = WebhookSender(hub.settings.allow_private_webhooks, hub.settings.webhook_timeout_s)
    shards = hub.settings.fanout_shards
    view = FanoutView(hub.redis, hub.keys, hub.subscriptions, hub.nodes, shards)
    watcher = LogWatcher(hub.redis, hub.keys.events)

    def shard_fanout(shard: int) -> ShardFanout:
        return ShardFanout(
            shard,
            hub.redis,
            hub.keys,
            hub.scripts,
            view,
            watcher,
            hub.news,
            hub.settings.feed_retention,
            owner,
            batcher,
            hub.settings.dedup_window_s,
        )

    members = DeliveryMembers(hub.scripts, hub.keys.delivery_members, owner, shards)
    fanout = FanoutShards(members, watcher, shard_fanout)
    delivery = Delivery(
        redis=hub.redis,
        keys=hub.keys,
        scripts=hub.scripts,
        subscriptions=hub.subscriptions,
        nodes=hub.nodes,
        feeds=hub.feeds,
        news=hub.news,
        sender=sender,
        schedule=hub.settings.retry_schedule,
        owner=owner,
        # Renewed every third of it: an attempt (a slot wait of up to one timeout, then at most two
        # for the POST) never outlasts what is left of it, so no other process sends the same event.
        lease_ttl_ms=int((4.5 * hub.settings.webhook_timeout_s + 10) * 1000),
        batcher=batcher,
        metrics=hub.metrics,
    )
    relay = relay_from(hub.settings)
    mail = (
        MailContext(
            relay=relay,
            mail_from=hub.settings.mail_from,
            link_key=hub.cursor_key,
            public_url=hub.settings.public_url,
            digest_periods_s=dict(
                zip(("hourly", "daily"), hub.settings.digest_periods_s, strict=True)
            ),
        )
        if relay is not None
        else None
    )
    supervisor = WebhookSupervisor(delivery, mail, members)
    hub.metrics.watch_delivery(lambda: fanout.held, lambda: supervisor.running)
    hub.fanout_task = asyncio.create_task(fanout.run(hub.stopping), name="fanout")
    workers = [
        hub.fanout_task,
        asyncio.create_task(supervisor.run(hub.stopping), name="webhooks"),
        asyncio.create_task(hub.metrics.publish_delivery(hub.stopping), name="share"),
    ]
    try:
        yield
    finally:
        hub.stopping.set()
        hub.news.wake_all()
        # A short grace, then cancel: both loops are safe to stop at any line (fanout.py,
        # webhooks.py), and one blocked in a Redis read would otherwise hold up the stop.
        _, unfinished = await asyncio.wait(workers, timeout=SHUTDOWN_GRACE_S)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await sender.close()

"""One worker per webhook or e-mail subscription in this process's share: the supervisor
starts and stops them as subscriptions and delivery processes come and go. The share comes from
the live delivery processes (members.py, shards.py: the counts per process differ by at most
one); the delivery lease decides which process sends while two briefly claim one."""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.exceptions import RedisError

from hub.delivery.email_delivery import EmailWorker, MailContext
from hub.delivery.members import DeliveryMembers
from hub.delivery.subscriptions import Subscription
from hub.delivery.webhooks import Delivery, WebhookWorker
from hub.logs import get_logger
from hub.store.leases import Lease

log = get_logger("hub.webhooks")

SCAN_EVERY_S = 2.0
SUPERVISE_EVERY_S = 0.25


class WebhookSupervisor:
    """Starts a worker for each webhook subscription of this process's share whose lease it can
    take, and stops those that leave its share."""

    def __init__(
        self,
        ctx: Delivery,
        mail: MailContext | None = None,
        members: DeliveryMembers | None = None,
    ) -> None:
        self._ctx = ctx
        self._mail = mail  # None: the hub sends no e-mail (no ALERTHUB_SMTP_URL)
        self._members = members  # None: every subscription is this process's to try
        self._workers: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}

    @property
    def running(self) -> int:
        """How many delivery workers this process runs now."""
        return sum(1 for task, _ in self._workers.values() if not task.done())

    async def run(self, stopping: asyncio.Event) -> None:
        version, scanned_at = -1, 0.0
        try:
            while not stopping.is_set():
                try:
                    current = await self._ctx.subscriptions.version()
                    if current != version or time.monotonic() - scanned_at > SCAN_EVERY_S:
                        version, subs = await self._ctx.subscriptions.all()
                        scanned_at = time.monotonic()
                        owners = {n.id: n for n in await self._ctx.nodes.list()}
                        snapshot = self._ctx.snapshot
                        snapshot.subs = {sub.id: sub for sub in subs}
                        snapshot.owners = owners
                        snapshot.version = version
                        await self._start_workers(subs, stopping)
                except (RedisError, OSError) as e:
                    log.warning("webhook_supervisor_redis_error", error=str(e)[:200])
                except Exception:
                    log.exception("webhook_supervisor_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), SUPERVISE_EVERY_S)
        finally:
            await self._stop_workers()

    async def _start_workers(self, subs: list[Subscription], stopping: asyncio.Event) -> None:
        for done in [k for k, (task, _) in self._workers.items() if task.done()]:
            del self._workers[done]
        wanted = {
            sub.id: sub
            for sub in subs
            if (sub.is_webhook or (sub.is_email and self._mail is not None))
            and sub.status != "paused"
        }
        mine = set(wanted) if self._members is None else self._members.my_share(list(wanted))
        for sub_id, (_, stop) in self._workers.items():
            if sub_id not in mine:
                stop.set()  # another process's share now: the worker lets go of its lease
        for sub_id in sorted(mine - self._workers.keys()):
            sub = wanted[sub_id]
            lease = Lease(
                self._ctx.scripts,
                self._ctx.keys.delivery_lease(sub.id),
                self._ctx.owner,
                self._ctx.lease_ttl_ms,
            )
            if stopping.is_set() or not await lease.hold():
                continue
            if sub.is_email:
                assert self._mail is not None
                worker: WebhookWorker | EmailWorker = EmailWorker(
                    self._ctx, self._mail, sub.id, lease
                )
            else:
                worker = WebhookWorker(self._ctx, sub.id, lease)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop), name=f"{sub.delivery_type}-{sub.id}")
            self._workers[sub.id] = (task, stop)

    async def _stop_workers(self) -> None:
        for _, stop in self._workers.values():
            stop.set()
        tasks = [task for task, _ in self._workers.values()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=0.2)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

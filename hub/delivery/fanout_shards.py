"""This process's part of the fan-out: it keeps its membership among the delivery processes,
runs a ShardFanout for each shard the members' split gives it, and lets go of a shard the
split gives to another (whose ShardFanout takes the lease once it is released or lapses)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from hub.delivery.fanout import ShardFanout
from hub.delivery.fanout_view import LogWatcher
from hub.delivery.members import BEAT_S, DeliveryMembers
from hub.logs import get_logger

log = get_logger("hub.fanout")


@dataclass
class _Running:
    fanout: ShardFanout
    stop: asyncio.Event
    task: asyncio.Task[None]


class FanoutShards:
    def __init__(
        self,
        members: DeliveryMembers,
        watcher: LogWatcher,
        make_shard: Callable[[int], ShardFanout],
    ) -> None:
        self.members = members
        self._watcher = watcher
        self._make_shard = make_shard
        self._running: dict[int, _Running] = {}

    @property
    def held(self) -> int:
        """How many shards this process fans out now (holds the lease of)."""
        return sum(1 for r in self._running.values() if r.fanout.holding)

    async def run(self, stopping: asyncio.Event) -> None:
        watcher = asyncio.create_task(self._watcher.run(stopping), name="fanout-watch")
        try:
            while not stopping.is_set():
                try:
                    await self.members.beat()
                except (RedisError, OSError) as e:
                    # The shards keep on under their leases, which fence them if this lasts.
                    log.warning("delivery_members_error", error=type(e).__name__)
                self._rebalance()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), BEAT_S)
        finally:
            for running in self._running.values():
                running.stop.set()
            tasks = [r.task for r in self._running.values()] + [watcher]
            try:
                await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await self.members.leave()

    def _rebalance(self) -> None:
        mine = self.members.my_shards()
        for shard, running in list(self._running.items()):
            if running.task.done():
                if running.stop.is_set() or shard not in mine:
                    del self._running[shard]
                    continue
                # A shard loop never ends by itself; if one did, start it again.
                log.error("fanout_shard_ended", shard=shard)
                del self._running[shard]
            elif shard not in mine:
                running.stop.set()  # it releases the lease as it ends
        for shard in sorted(mine - self._running.keys()):
            fanout = self._make_shard(shard)
            stop = asyncio.Event()
            task = asyncio.create_task(fanout.run(stop), name=f"fanout-{shard}")
            self._running[shard] = _Running(fanout, stop, task)

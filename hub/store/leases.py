"""Leases: one holder at a time for a piece of background work (the fan-out, one subscription's
webhook deliveries), taken and renewed in one Redis step and lost when not renewed in time."""

from __future__ import annotations

import os
import socket

from hub.ids import new_ulid
from hub.store.scripts import Scripts


def process_identity() -> str:
    """Names this process in leases and logs: host, pid and a random part (pids get reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_ulid()[-8:]}"


class Lease:
    def __init__(self, scripts: Scripts, key: str, owner: str, ttl_ms: int) -> None:
        self._scripts = scripts
        self.key = key
        self.owner = owner
        self.ttl_ms = ttl_ms

    async def hold(self) -> bool:
        """Take the lease or renew it; False when another holder has it."""
        return await self._scripts.lease(keys=[self.key], args=[self.owner, self.ttl_ms]) == 1

    async def release(self) -> None:
        await self._scripts.release(keys=[self.key], args=[self.owner])

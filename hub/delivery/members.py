"""The live delivery processes, kept in Redis: each renews its membership every BEAT_S and
lapses MEMBER_TTL_MS after its last renewal, so the others take over its share of the work
(shards.py) within that time of its death."""

from __future__ import annotations

from hub.delivery.shards import shards_of, share_of
from hub.store.scripts import Scripts

MEMBER_TTL_MS = 5_000
BEAT_S = 1.0


class DeliveryMembers:
    """This process's view of the live delivery processes, as of its last `beat`."""

    def __init__(self, scripts: Scripts, key: str, me: str, shards: int) -> None:
        self._scripts = scripts
        self._key = key
        self.me = me
        self.shards = shards
        self.members: tuple[str, ...] = ()

    async def beat(self) -> None:
        """Renew this process's membership and read who else is alive."""
        self.members = await self._call(leaving=False)

    async def leave(self) -> None:
        """End the membership now (a clean stop): the others take the share at their next beat."""
        self.members = ()
        await self._call(leaving=True)

    def my_shards(self) -> frozenset[int]:
        return shards_of(self.me, self.members, self.shards)

    def my_share(self, items: list[str]) -> frozenset[str]:
        return share_of(self.me, self.members, items)

    async def _call(self, leaving: bool) -> tuple[str, ...]:
        reply = await self._scripts.delivery_members(
            keys=[self._key], args=[self.me, MEMBER_TTL_MS, "1" if leaving else "0"]
        )
        return tuple(m.decode() if isinstance(m, bytes) else str(m) for m in reply)

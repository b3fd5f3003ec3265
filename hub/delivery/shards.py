"""Which delivery process does which part of the delivery work: pure rules, no I/O.

Subscriptions are split into a fixed number of shards by a hash of their id; each shard is
fanned out under a lease of its own and reads the event log through a consumer group of its
own, so shards progress independently. The live delivery processes (members.py) share the
shards and the webhook workers by their place in the sorted list of members, so every process
computes the same split from the same list and the counts per process differ by at most one.
While processes join or leave, two may briefly claim the same shard or worker: the lease
decides, and a feed append is idempotent (fanout.py), so nothing is lost or doubled meanwhile.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

GROUP_PREFIX = "fanout"  # every consumer group of the fan-out is named "fanout" or "fanout:…"
MAX_STREAM_SEQUENCE = 2**64 - 1


def shard_of(sub_id: str, shards: int) -> int:
    """The shard of a subscription: a stable hash of its id (the same in every process)."""
    return zlib.crc32(sub_id.encode()) % shards


def group_name(shards: int, shard: int) -> str:
    """The consumer group of one shard. The count is part of the name, so a hub restarted with
    another count reads through new groups rather than through groups split another way."""
    return f"{GROUP_PREFIX}:{shards}:{shard}"


def is_fanout_group(name: str) -> bool:
    return name == GROUP_PREFIX or name.startswith(GROUP_PREFIX + ":")


def shards_of(member: str, members: Sequence[str], shards: int) -> frozenset[int]:
    """The shards `member` fans out: every n-th one from its place among the n sorted members
    (none when it is not among them)."""
    ordered = sorted(set(members))
    if member not in ordered:
        return frozenset()
    return frozenset(range(ordered.index(member), shards, len(ordered)))


def share_of(member: str, members: Sequence[str], items: Iterable[str]) -> frozenset[str]:
    """`member`'s share of `items` (webhook subscriptions): every n-th one of them sorted, from
    its place among the n sorted members. Subscription ids grow with time, so a new
    subscription joins the end of the list and moves no other one's worker."""
    ordered = sorted(set(members))
    if member not in ordered:
        return frozenset()
    place, count = ordered.index(member), len(ordered)
    return frozenset(item for n, item in enumerate(sorted(set(items))) if n % count == place)


def stream_id_before(entry_id: str) -> str:
    """The stream id just before `entry_id` ("ms-seq"), so that a group created there reads
    `entry_id` first."""
    ms_text, _, seq_text = entry_id.partition("-")
    ms, seq = int(ms_text), int(seq_text or 0)
    if seq > 0:
        return f"{ms}-{seq - 1}"
    if ms == 0:
        return "0-0"
    return f"{ms - 1}-{MAX_STREAM_SEQUENCE}"

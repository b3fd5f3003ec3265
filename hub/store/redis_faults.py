"""Which Redis failures mean "the store cannot take this now; nothing was stored": the hub answers
those with 503 (API.md), and every other failure is a bug to log."""

from __future__ import annotations

import redis.exceptions

from hub.errors import Unavailable
from hub.store.batching import NotReplicated
from hub.store.redis_pipe import ReplyLost

# Errors by which Redis refuses work it would otherwise do (full memory, a failing disk, a
# replica, a load in progress), also when they surface from inside a script.
_REFUSALS = ("OOM", "MISCONF", "READONLY", "LOADING", "BUSY", "NOREPLICAS", "MASTERDOWN")
# A Redis Cluster's answers while a slot changes hands (a failover): the command did not run.
_CLUSTER_MOVES = ("CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK")
# The same as redis-py's cluster client raises them (a storm of MOVED ends in a ClusterError,
# a slot no master serves in SlotNotCoveredError).
_CLUSTER_ERRORS = (
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.AskError,
    redis.exceptions.ClusterError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.RedisClusterUnreachableError,
)


def refusal_code(error: redis.exceptions.ResponseError) -> str | None:
    text = str(error)
    for code in (*_REFUSALS, *_CLUSTER_MOVES):
        if text.startswith(code) or f"-{code} " in text:
            return code
    return None


def store_unavailable(error: BaseException) -> Unavailable | None:
    """The 503 answer for `error`, or None when it is not a store outage. When Redis went away
    after a write was sent and before it answered, the write may have been applied (and kept
    by the append-only file), so the answer says so instead of "nothing was stored"."""
    if isinstance(error, NotReplicated):
        return Unavailable(
            f"the alert is stored, but {error}: a failover now could lose it. Sending the same"
            " request again is safe: an alert with the same id and revision is stored once"
        )
    if isinstance(error, ReplyLost | redis.exceptions.TimeoutError):
        return Unavailable(
            "the store did not confirm the write before it went away; it may have been applied."
            " Sending the same request again is safe: an alert with the same id and revision"
            " is stored once"
        )
    if isinstance(error, redis.exceptions.ConnectionError):
        return Unavailable("the store is unreachable; nothing was stored")
    if isinstance(error, _CLUSTER_ERRORS):
        return Unavailable("the store is failing over; nothing was stored")
    code = refusal_code(error) if isinstance(error, redis.exceptions.ResponseError) else None
    if code in _CLUSTER_MOVES:
        return Unavailable("the store is failing over; nothing was stored")
    if code is not None:
        return Unavailable("the store refuses writes; nothing was stored")
    return None

"""Script calls of concurrent requests sent together: one socket write for many.

On the ingest path the kernel work of one write to Redis per request costs more than the hub's
own logic (measured: about a fifth of the hub's CPU). Calls queued during one turn of the event
loop go out in one write on hub.redis_pipe's connection (not a transaction: each script is
atomic on its own, and each caller gets its own answer or its own error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from hub.store.redis_pipe import Arg, Connection, PipelinedRedis, ReplyLost, pack_args, pack_command

# Calls queued in one loop turn leave together at its end, or as soon as this many are queued, so
# that Redis, on a core of its own, starts on the first ones while the hub still prepares the
# rest (benchmarks/ingest.py, two cores: 16 did a few per cent better than 8, 32 or 128).
MAX_BATCH = 16
_ROLE = pack_command(["ROLE"])


@dataclass(frozen=True, slots=True)
class ReplicasAck:
    """Answer a script call only once `replicas` replicas hold its writes (Redis WAIT), waiting
    at most `timeout_s` for them."""

    replicas: int
    timeout_s: float

    def command(self) -> bytes:
        return pack_command(["WAIT", self.replicas, max(1, round(self.timeout_s * 1000))])


class NotReplicated(Exception):
    """The call's writes were made on the primary, but fewer replicas than asked confirmed them
    in time: a failover now could lose them. Sending the same request again is safe."""

    def __init__(self, acked: int, wanted: ReplicasAck) -> None:
        super().__init__(
            f"{acked} of {wanted.replicas} replicas confirmed the write"
            f" within {wanted.timeout_s:g} s"
        )
        self.acked = acked
        self.wanted = wanted


def _quiet(future: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """`future`, its exception (a lost connection) retrieved even when nobody awaits it."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


class ScriptBatcher:
    """With `replicas_ack`, every `call` is answered only after that many replicas hold its
    writes: one WAIT ends each batch that holds a call, on the same connection, so it covers
    every write of the batch (a group commit) and WAIT's cost is paid once per batch."""

    def __init__(
        self,
        pipe: PipelinedRedis,
        max_batch: int = MAX_BATCH,
        replicas_ack: ReplicasAck | None = None,
    ) -> None:
        self._pipe = pipe
        self._max_batch = max_batch
        self._replicas_ack = replicas_ack
        self._wait_command = replicas_ack.command() if replicas_ack is not None else b""
        # The reply of the WAIT that will end the batch being gathered, when a call needs it.
        self._wait: asyncio.Future[Any] | None = None
        self._packed: list[bytes] = []
        self._futures: list[asyncio.Future[Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Writes waiting, in order, for the connection that _connecting opens.
        self._backlog: list[tuple[bytes, list[asyncio.Future[Any]]]] = []
        self._connecting: asyncio.Task[None] | None = None
        self._heads: dict[tuple[str, int], bytes] = {}  # packed "EVALSHA <sha> <numkeys>"
        # Replicas of the server, as the ROLE after call_many's last WAIT said (None: not yet).
        self.replicas_seen: int | None = None

    async def call(
        self,
        script: AsyncScript,
        keys: Sequence[Arg],
        args: Sequence[Arg],
        replicated: bool = True,
    ) -> Any:
        """The script's reply, as `await script(keys=keys, args=args)` would give it. With
        `replicated` False the call does not wait for replicas_ack (a cluster's master other
        than `{core}`'s: cluster.ClusterBatcher)."""
        head = self._heads.get((script.sha, len(keys)))
        if head is None:
            head = self._heads[(script.sha, len(keys))] = pack_args(
                ["EVALSHA", script.sha, len(keys)]
            )
        command = pack_command([*keys, *args], head, 3)
        send = self._acked if replicated else self._queue
        try:
            reply = await send(command)
        except RedisConnectionError as first:
            # A connection that died with a Redis restart fails its first write. Once more on a
            # fresh one: a script that did run answers the same call idempotently (a resend is
            # `unchanged`), so at worst a caller sees that instead of `created`.
            try:
                reply = await send(command)
            except RedisConnectionError as e:
                if isinstance(first, ReplyLost):
                    raise first from e  # the first try may have run: say so, not "refused"
                raise
        if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
            # The server lost its script cache (a restart, SCRIPT FLUSH, or a replica promoted
            # by a failover): the script did not run, so running it once more, loaded on the
            # same connection just before, is safe.
            _quiet(self._queue(pack_command(["SCRIPT", "LOAD", script.script])))
            reply = await send(command)
            if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
                raise RedisConnectionError("the store changed under the call; nothing was stored")
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def _acked(self, command: bytes) -> Any:
        """The reply of `command`, and with replicas_ack, once the WAIT after it is answered
        (an error reply is returned, not raised, as from _queue)."""
        if self._replicas_ack is None:
            return await self._queue(command)
        if self._wait is None:
            # Before the command is queued: a full batch leaves at once, with its WAIT.
            self._wait = _quiet(asyncio.get_running_loop().create_future())
        wait = self._wait
        reply = await self._queue(command)
        acked = await wait
        if isinstance(acked, ResponseError):
            # A server that cannot WAIT (a replica: the write was refused too) confirms nothing.
            raise NotReplicated(0, self._replicas_ack)
        if not isinstance(reply, ResponseError) and acked < self._replicas_ack.replicas:
            raise NotReplicated(acked, self._replicas_ack)
        return reply

    async def call_many(
        self,
        script: AsyncScript,
        calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]],
        replicas_ack: ReplicasAck | None = None,
    ) -> list[Any]:
        """Replies of many calls of one script, sent in order on the one connection (so they
        run in order); an error reply is returned in its place, not raised (NOSCRIPT too: the
        caller decides whether a redo is safe). With `replicas_ack`, a WAIT follows the calls
        in the same write, and when fewer replicas confirm them, each reply that was not an
        error is a NotReplicated instead (the calls ran; the caller may redo them). A ROLE
        after the WAIT tells `replicas_seen`, how many replicas the server has now."""
        head = pack_args(["EVALSHA", script.sha, len(calls[0][0])]) if calls else b""
        futures = [self._queue(pack_command([*keys, *args], head, 3)) for keys, args in calls]
        if replicas_ack is None or not calls:
            return list(await asyncio.gather(*futures, return_exceptions=True))
        # Queued in the same loop turn as the calls, so they leave on their connection.
        wait = self._queue(replicas_ack.command())
        role = self._queue(_ROLE)
        replies = list(await asyncio.gather(*futures, return_exceptions=True))
        acked, roles = await asyncio.gather(wait, role, return_exceptions=True)
        if isinstance(roles, list) and len(roles) == 3 and roles[0] == b"master":
            self.replicas_seen = len(roles[2])
        if isinstance(acked, int) and acked >= replicas_ack.replicas:
            return replies
        missing = NotReplicated(acked if isinstance(acked, int) else 0, replicas_ack)
        return [r if isinstance(r, BaseException) else missing for r in replies]

    async def learn_replicas(self) -> None:
        """Set `replicas_seen` from the server's ROLE (a master's replicas, 0 otherwise)."""
        roles = await self._queue(_ROLE)
        if isinstance(roles, list) and len(roles) == 3 and roles[0] == b"master":
            self.replicas_seen = len(roles[2])
        elif not isinstance(roles, BaseException):
            self.replicas_seen = 0

    async def command(self, *args: Arg) -> Any:
        """A plain command's reply as hiredis parses it (no redis-py response callbacks): the
        SSE streams woken by one feed-news message read their feeds in a few writes, not in
        one round trip each."""
        reply = await self._queue(pack_command(args))
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def _queue(self, command: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._packed.append(command)
        self._futures.append(future)
        if len(self._futures) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        elif len(self._futures) >= self._max_batch:
            self._flush()
        return future

    def _flush(self) -> None:
        if not self._futures:
            return
        if self._wait is not None:
            self._packed.append(self._wait_command)
            self._futures.append(self._wait)
            self._wait = None
        packed, futures = b"".join(self._packed), self._futures
        self._packed, self._futures = [], []
        if not self._backlog:
            protocol = self._pipe.ready()
            if protocol is not None:
                self._send(protocol, packed, futures)
                return
        # No connection yet, or writes already waiting for one: this write waits behind them,
        # so that everything leaves in the order it was queued (fan-out relies on it: a feed
        # refuses an event older than its newest, so an overtaken append would be lost).
        self._backlog.append((packed, futures))
        if self._connecting is None:
            task = asyncio.get_running_loop().create_task(self._connect_and_send())
            self._connecting = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect_and_send(self) -> None:
        """Open the connection, then send every waiting write in order, in one loop turn."""
        try:
            try:
                protocol = await self._pipe.connect()
            except Exception as e:
                backlog, self._backlog = self._backlog, []
                for _, futures in backlog:
                    for future in futures:
                        if not future.done():
                            future.set_exception(e)
                return
            backlog, self._backlog = self._backlog, []
            for packed, futures in backlog:
                self._send(protocol, packed, futures)
        finally:
            self._connecting = None

    @staticmethod
    def _send(protocol: Connection, packed: bytes, futures: list[asyncio.Future[Any]]) -> None:
        try:
            protocol.send(packed, futures)
        except RedisConnectionError as e:
            for future in futures:
                if not future.done():
                    future.set_exception(e)

    async def close(self) -> None:
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._pipe.close()

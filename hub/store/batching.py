"""Script calls of concurrent requests sent together: one socket write for many.

On the ingest path the kernel work of one write to Redis per request costs more than the hub's
own logic (measured: about a fifth of the hub's CPU). Calls queued during one turn of the event
loop go out in one write on hub.redis_pipe's connection (not a transaction: each script is
atomic on its own, and each caller gets its own answer or its own error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from hub.store.redis_pipe import Arg, Connection, PipelinedRedis, ReplyLost, pack_args, pack_command

# Calls queued in one loop turn leave together at its end, or as soon as this many are queued, so
# that Redis, on a core of its own, starts on the first ones while the hub still prepares the
# rest (benchmarks/ingest.py, two cores: 16 did a few per cent better than 8, 32 or 128).
MAX_BATCH = 16


class ScriptBatcher:
    def __init__(self, pipe: PipelinedRedis, max_batch: int = MAX_BATCH) -> None:
        self._pipe = pipe
        self._max_batch = max_batch
        self._packed: list[bytes] = []
        self._futures: list[asyncio.Future[Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._heads: dict[tuple[str, int], bytes] = {}  # packed "EVALSHA <sha> <numkeys>"

    async def call(self, script: AsyncScript, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """The script's reply, as `await script(keys=keys, args=args)` would give it."""
        head = self._heads.get((script.sha, len(keys)))
        if head is None:
            head = self._heads[(script.sha, len(keys))] = pack_args(
                ["EVALSHA", script.sha, len(keys)]
            )
        command = pack_command([*keys, *args], head, 3)
        try:
            reply = await self._queue(command)
        except RedisConnectionError as first:
            # A connection that died with a Redis restart fails its first write. Once more on a
            # fresh one: a script that did run answers the same call idempotently (a resend is
            # `unchanged`), so at worst a caller sees that instead of `created`.
            try:
                reply = await self._queue(command)
            except RedisConnectionError as e:
                if isinstance(first, ReplyLost):
                    raise first from e  # the first try may have run: say so, not "refused"
                raise
        if isinstance(reply, ResponseError):
            if str(reply).startswith("NOSCRIPT"):
                # The server lost its script cache (a restart or SCRIPT FLUSH): the script did
                # not run, so running it once more, loading it on the way, is safe.
                return await script(keys=keys, args=args)
            raise reply
        return reply

    async def call_many(
        self, script: AsyncScript, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]]
    ) -> list[Any]:
        """Replies of many calls of one script, sent in order on the one connection (so they
        run in order); an error reply is returned in its place, not raised (NOSCRIPT too: the
        caller decides whether a redo is safe)."""
        head = pack_args(["EVALSHA", script.sha, len(calls[0][0])]) if calls else b""
        futures = [self._queue(pack_command([*keys, *args], head, 3)) for keys, args in calls]
        return list(await asyncio.gather(*futures, return_exceptions=True))

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
        packed, futures = b"".join(self._packed), self._futures
        self._packed, self._futures = [], []
        protocol = self._pipe.ready()
        if protocol is not None:
            self._send(protocol, packed, futures)
            return
        task = asyncio.get_running_loop().create_task(self._connect_and_send(packed, futures))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_and_send(self, packed: bytes, futures: list[asyncio.Future[Any]]) -> None:
        try:
            protocol = await self._pipe.connect()
        except Exception as e:
            for future in futures:
                if not future.done():
                    future.set_exception(e)
            return
        self._send(protocol, packed, futures)

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

"""hub.redis_pipe against a real redis-server: replies reach their own callers, failures arrive
as redis-py's exceptions, and the connection comes back after Redis does."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import uvloop
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.store.embedded import RedisServer, free_port, start_redis_server
from hub.store.redis_faults import store_unavailable
from hub.store.redis_pipe import PipelinedRedis, pack_args, pack_command


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path / "redis", port=free_port(), appendonly=False)
    yield server
    server.stop()


async def call(pipe: PipelinedRedis, *command: Any) -> Any:
    connection = await pipe.connect()
    future = asyncio.get_running_loop().create_future()
    connection.send(pack_command(command), [future])
    return await future


async def many(pipe: PipelinedRedis, commands: list[list[Any]]) -> list[Any]:
    """All commands in one write, as the batcher sends them."""
    connection = await pipe.connect()
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in commands]
    connection.send(b"".join(pack_command(c) for c in commands), futures)
    return await asyncio.gather(*futures)


def test_pack_command_is_resp() -> None:
    assert pack_command(["SET", "k", b"v\r\n", 12, 1.5]) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
    )
    assert pack_command(["ECHO", "Ђ"]) == b"*2\r\n$4\r\nECHO\r\n$2\r\n\xd0\x82\r\n"
    with pytest.raises(TypeError):
        pack_command(["SET", "k", None])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        pack_command(["SET", "k", True])
    assert pack_command([enum.IntEnum("N", "ONE")(1)]) == b"*1\r\n$1\r\n1\r\n"
    head = pack_args(["SET", "k"])
    assert pack_command([b"v", 7], head, 2) == pack_command(["SET", "k", b"v", 7])


async def test_replies_reach_their_own_callers(redis_url: str) -> None:
    """Two hundred commands in one write, some of them refused: each answer is the right one."""
    pipe = PipelinedRedis(redis_url)
    try:
        await call(pipe, "SET", "text", "x")
        commands: list[list[Any]] = []
        for i in range(200):
            commands.append(["INCR", "text"] if i % 7 == 0 else ["ECHO", f"n{i}"])
        replies = await many(pipe, commands)
        for i, reply in enumerate(replies):
            if i % 7 == 0:
                assert isinstance(reply, ResponseError) and "not an integer" in str(reply)
            else:
                assert reply == f"n{i}".encode()
        assert await call(pipe, "HSET", "h", "a", "1", "b", "2") == 2
        assert await call(pipe, "HGETALL", "h") == [b"a", b"1", b"b", b"2"]
    finally:
        await pipe.close()


async def test_large_values_arrive_whole(redis_url: str) -> None:
    """A reply split over many socket reads is put together before it is handed over."""
    pipe = PipelinedRedis(redis_url)
    try:
        value = bytes(range(256)) * 4096  # 1 MiB, every byte value
        replies = await many(pipe, [["SET", "big", value], ["GET", "big"], ["STRLEN", "big"]])
        assert replies == [b"OK", value, len(value)]
    finally:
        await pipe.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    pipe = PipelinedRedis(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisConnectionError) as caught:
        await call(pipe, "PING")
    assert store_unavailable(caught.value) is not None


async def test_reconnects_after_redis_restarts(own_redis: RedisServer) -> None:
    """Calls fail with ConnectionError while Redis is down and succeed once it is back."""
    pipe = PipelinedRedis(own_redis.url)
    try:
        assert await call(pipe, "PING") == b"PONG"
        own_redis.stop()
        with pytest.raises(RedisConnectionError):
            await call(pipe, "PING")
        port = int(own_redis.url.rsplit(":", 1)[1].split("/")[0])
        restarted = start_redis_server(own_redis.data_dir, port=port, appendonly=False)
        try:
            assert await call(pipe, "PING") == b"PONG"
        finally:
            restarted.stop()
    finally:
        await pipe.close()


# Redis busy for 1.5 s (DEBUG SLEEP would do, but Redis 7 disables DEBUG by default). Under
# lua-time-limit (5 s), so other clients simply wait.
BUSY_FOR_1_5_S_LUA = """
local function now() local t = redis.call('TIME') return t[1] + t[2] / 1000000 end
local start = now()
while now() - start < 1.5 do end
return 'OK'
"""


async def test_no_answer_in_time_is_a_timeout(redis_url: str) -> None:
    """While Redis is busy past the timeout, the caller gets TimeoutError (a 503 to the hub),
    and the next call works on a fresh connection."""
    pipe = PipelinedRedis(redis_url, timeout_s=0.3)
    try:
        await call(pipe, "PING")
        other = PipelinedRedis(redis_url, timeout_s=10)
        sleeping = asyncio.ensure_future(call(other, "EVAL", BUSY_FOR_1_5_S_LUA, 0))
        try:
            with pytest.raises(RedisTimeoutError) as caught:
                # The busy script may reach Redis a moment after our PING: ask until one waits.
                for _ in range(100):
                    await call(pipe, "PING")
                    await asyncio.sleep(0.01)
            assert store_unavailable(caught.value) is not None
            assert await sleeping == b"OK"
        finally:
            await other.close()
        assert await call(pipe, "PING") == b"PONG"
    finally:
        await pipe.close()


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_stall_of_the_process_is_not_charged_to_redis(redis_url: str, loop_factory: Any) -> None:
    """A process that stands still past the timeout (a long callback here; SIGSTOP or a paused
    VM alike) right after a large write, most of it still in its own send buffer, gets every
    reply once it moves again, not TimeoutError: the wait counts from the end of the stall, as
    Redis cannot answer what it has not been sent (a fan-out batch of 192 appends failed that
    way after a SIGCONT)."""
    value = "v" * 100_000
    commands = [["SET", f"stall:{n}", value] for n in range(200)]  # 20 MB: more than a write

    async def stalled_write() -> Any:
        pipe = PipelinedRedis(redis_url, timeout_s=1.0)
        try:
            connection = await pipe.connect()
            futures = [asyncio.get_running_loop().create_future() for _ in commands]
            connection.send(b"".join(pack_command(c) for c in commands), futures)
            time.sleep(2.0)  # noqa: ASYNC251 (the whole loop stands still, as a stopped process)
            replies = await asyncio.gather(*futures)
            return set(replies), await call(pipe, "PING")
        finally:
            await pipe.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(stalled_write()) == ({b"OK"}, b"PONG")


async def test_password_and_database_from_the_url(own_redis: RedisServer) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    try:
        admin.config_set("requirepass", "s3cret")
        base = own_redis.url.rsplit("/", 1)[0].replace("redis://", "redis://:s3cret@")
        pipe = PipelinedRedis(base + "/3")
        try:
            await call(pipe, "SET", "where", "db3")
        finally:
            await pipe.close()
        admin = redis.Redis.from_url(base + "/3")
        assert admin.get("where") == b"db3"
        wrong = PipelinedRedis(base.replace("s3cret", "wrong") + "/0")
        with pytest.raises(AuthenticationError):
            await call(wrong, "PING")
    finally:
        admin.close()


def test_works_on_uvloop(redis_url: str) -> None:
    """The hub runs on uvloop, whose transports are not asyncio's classes."""

    async def ping() -> Any:
        pipe = PipelinedRedis(redis_url)
        try:
            return await many(pipe, [["PING"], ["ECHO", "uv"]])
        finally:
            await pipe.close()

    assert uvloop.run(ping()) == [b"PONG", b"uv"]

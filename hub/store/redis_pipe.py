"""One pipelined Redis connection of our own, for the ingest path's script calls.

redis-py's pipeline spends tens of microseconds of Python per call (each argument packed on its
own, one awaited read per reply), about a tenth of the hub's CPU per stored alert. Here a call is
packed into RESP in one go, the calls of one event-loop turn leave in one write, and hiredis
parses the replies as they arrive and hands each to its caller, in order. Calls do not wait for
earlier batches: Redis answers a connection's commands in the order it received them.

Failures come as redis-py's exceptions (ConnectionError, TimeoutError, ResponseError), so that
hub.redis_faults and the callers treat both paths alike. Everything else the hub asks of Redis
still goes through redis-py.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import AuthenticationError, InvalidResponse, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = bytes | str | int | float
# Connection options (as redis-py's parse_url gives them) of the server to open now: asked
# before each connection, so that one behind Sentinel is found again after a failover.
Locate = Callable[[], Awaitable[dict[str, Any]]]


# "$<length>\r\n" of the short bulk strings, made once: formatting one costs more than the rest
# of packing an argument.
_CACHED_HEADERS = 512
_BULK_HEADERS = tuple(b"$%d\r\n" % size for size in range(_CACHED_HEADERS))


def pack_command(args: Sequence[Arg], head: bytes = b"", head_count: int = 0) -> bytes:
    """A command in RESP: an array of bulk strings. `head` is the packed form of the command's
    first `head_count` arguments (pack_args), for a caller that sends the same start often."""
    datas = [
        arg
        if type(arg) is bytes
        else arg.encode()
        if type(arg) is str
        else b"%d" % arg
        if type(arg) is int
        else _other_arg(arg)
        for arg in args
    ]
    bulks = b"\r\n".join(
        [
            (_BULK_HEADERS[len(data)] if len(data) < _CACHED_HEADERS else b"$%d\r\n" % len(data))
            + data
            for data in datas
        ]
    )
    return b"*%d\r\n" % (len(datas) + head_count) + head + bulks + (b"\r\n" if datas else b"")


def pack_args(args: Sequence[Arg]) -> bytes:
    """Arguments packed as bulk strings, without the array header: a `head` for pack_command."""
    return pack_command(args).partition(b"\r\n")[2]


def _other_arg(arg: object) -> bytes:
    if isinstance(arg, bytes | bytearray | memoryview):
        return bytes(arg)
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):
        raise TypeError("cannot send a bool to Redis: say 1 or 0")
    if isinstance(arg, int):
        return b"%d" % arg  # an IntEnum too, as its number
    if isinstance(arg, float):
        return repr(float(arg)).encode()
    raise TypeError(f"cannot send a {type(arg).__name__} to Redis")


def _ssl_context(options: dict[str, Any]) -> ssl.SSLContext | None:
    if "ssl_context" in options:
        return options["ssl_context"]
    if options.get("connection_class") is not SSLConnection:
        return None
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_cert_reqs") == "none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# A watchdog that runs this much later than it was due (or a quarter of the timeout, when less)
# finds the process stalled, not Redis (Connection._check_overdue).
STALL_S = 0.5


class ReplyLost(RedisConnectionError):
    """The connection ended after a command was written and before its reply came: the command
    may have run. (A ConnectionError, so callers that only care about an outage need not look.)"""


class Connection(asyncio.Protocol):
    """Replies matched to waiting futures in the order the commands were written."""

    def __init__(self, timeout_s: float, leave_demoted: bool = False) -> None:
        self._leave_demoted = leave_demoted
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._timeout_s = timeout_s
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_due = 0.0
        self._waits_from = 0.0  # the end of the last stall of this process the watchdog saw
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def send(self, data: bytes, futures: Sequence[asyncio.Future[Any]]) -> None:
        """Write packed commands; each reply, in order, becomes the result of one of `futures`
        (an error reply too, as a ResponseError)."""
        if self.lost or self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("the connection to Redis is closed")
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        self._waiting.extend((future, sent_at) for future in futures)
        self.transport.write(data)
        if self._watchdog is None:
            self._arm_watchdog(self._timeout_s)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while self._waiting:
            try:
                reply = self._reader.gets()
            except InvalidResponse as e:
                self.abort(e)
                return
            if reply is False:
                return
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_result(reply)
            if self._leave_demoted and _is_readonly(reply):
                self._retire()
        if self.lost and not self._waiting and self.transport is not None:
            self.transport.close()
            return
        if self._reader.has_data():
            self.abort(InvalidResponse("Redis sent a reply nobody asked for"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail_all(ReplyLost(f"Redis closed the connection ({exc or 'end of stream'})"))

    def abort(self, error: Exception) -> None:
        """Drop the connection: every caller still waiting gets `error`."""
        self.lost = True
        self._fail_all(error)
        if self.transport is not None:
            self.transport.abort()

    def _retire(self) -> None:
        """Take no more commands (the next caller opens a new connection, at the primary
        Sentinel names now); close once the replies already asked for have come."""
        self.lost = True
        if not self._waiting and self.transport is not None:
            self.transport.close()

    def _fail_all(self, error: Exception) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def _arm_watchdog(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._watchdog_due = loop.time() + delay
        self._watchdog = loop.call_later(delay, self._check_overdue)

    def _check_overdue(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        now = asyncio.get_running_loop().time()
        if now - self._watchdog_due > min(STALL_S, self._timeout_s / 4):
            # The watchdog ran late: the process itself stood still (stopped, a paused VM, one
            # long callback). Replies may wait unread and writes unsent in its own buffers, so
            # the stall is not Redis's: waits count from now.
            self._waits_from = now
        waited = now - max(self._waiting[0][1], self._waits_from)
        if waited >= self._timeout_s:
            self.abort(RedisTimeoutError(f"Redis did not answer within {self._timeout_s} s"))
        else:
            self._arm_watchdog(self._timeout_s - waited)


def _is_readonly(reply: Any) -> bool:
    """A primary demoted to a replica under this connection (Sentinel failed over) answers
    writes with READONLY, also from inside a script."""
    return isinstance(reply, ResponseError) and (
        str(reply).startswith("READONLY") or "-READONLY " in str(reply)
    )


class PipelinedRedis:
    """A lazily (re)connected connection to the Redis at `url` (redis://, rediss://, unix://,
    with user, password and db as redis-py reads them), or to the one `locate` names at each
    connection. With `leave_demoted`, a connection whose server answers READONLY is given up
    after that reply, so the next call reconnects (to a new primary)."""

    def __init__(
        self,
        url: str | None,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        locate: Locate | None = None,
        leave_demoted: bool = False,
    ) -> None:
        if (url is None) == (locate is None):
            raise ValueError("PipelinedRedis needs a url or a locate, not both")
        self._options: dict[str, Any] = dict(parse_url(url)) if url is not None else {}
        self._locate = locate
        self._leave_demoted = leave_demoted
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._protocol: Connection | None = None
        self._connecting: asyncio.Future[Connection] | None = None

    def ready(self) -> Connection | None:
        """The open connection, or None when `connect` must be awaited first."""
        protocol = self._protocol
        return protocol if protocol is not None and not protocol.lost else None

    async def connect(self) -> Connection:
        """The open connection, opened now if need be (one attempt shared by all callers)."""
        protocol = self.ready()
        if protocol is not None:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> Connection:
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        def protocol_factory() -> Connection:
            return Connection(self._timeout_s, self._leave_demoted)

        try:
            async with asyncio.timeout(self._connect_timeout_s):
                options = self._options if self._locate is None else await self._locate()
                if "path" in options:
                    _, protocol = await loop.create_unix_connection(
                        protocol_factory, options["path"]
                    )
                else:
                    _, protocol = await loop.create_connection(
                        protocol_factory,
                        options.get("host", "localhost"),
                        options.get("port", 6379),
                        ssl=_ssl_context(options),
                    )
        except (OSError, TimeoutError) as e:  # the built-in TimeoutError: asyncio.timeout's
            waited = time.monotonic() - started
            raise RedisConnectionError(
                f"cannot connect to Redis ({e!r} after {waited:.1f} s)"
            ) from e
        await self._hello(protocol, options)
        self._protocol = protocol
        return protocol

    async def _hello(self, protocol: Connection, options: dict[str, Any]) -> None:
        commands: list[list[Arg]] = []
        if password := options.get("password"):
            user = options.get("username")
            commands.append(["AUTH", user, password] if user else ["AUTH", password])
        if db := options.get("db"):
            commands.append(["SELECT", db])
        if not commands:
            return
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        protocol.send(b"".join(pack_command(c) for c in commands), futures)
        replies = await asyncio.gather(*futures)
        for command, reply in zip(commands, replies, strict=True):
            if isinstance(reply, ResponseError):
                protocol.abort(RedisConnectionError("connection set-up refused"))
                if command[0] == "AUTH":
                    raise AuthenticationError(str(reply))
                raise RedisConnectionError(f"Redis refused {command[0]}: {reply}")

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.abort(ReplyLost("the hub closed its connection to Redis"))

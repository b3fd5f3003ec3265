"""Hostile webhook endpoints on loopback: raw asyncio servers that speak just enough HTTP/1.1 to
answer the hub's verification challenge, then, once switched on, misbehave on every request in
ways aiohttp's server would never allow: hang, never read, reset, answer byte by byte, send an
endless body or endless headers, or answer 410 Gone. Each counts what it did (the faults)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

import orjson

from hub.store.embedded import free_port

FLOOD_CHUNK = 64 * 1024
SLOW_BYTE_S = 0.5  # the status line, one byte per half second
DRIP_BYTE_S = 0.2  # an endless body, one byte every 0.2 s


class Behaviour(StrEnum):
    HANG = "hang"  # reads the request, never answers
    DEAF = "deaf"  # holds the connection, never reads the request
    RESET = "reset"  # reads the request, then RST (SO_LINGER 0, close)
    SLOW = "slow"  # answers one byte every SLOW_BYTE_S, status line included
    DRIP = "drip"  # 200 and headers at once, then an endless body one byte at a time
    FLOOD_BODY = "flood-body"  # 200, then an endless body as fast as the socket takes it
    FLOOD_HEADERS = "flood-headers"  # a status line, then endless header lines
    GONE = "gone"  # 410 Gone


@dataclass
class HostileServer:
    """One port, many endpoints (`/h/<n>`): the path tells the subscriptions apart, while the
    behaviour is the port's. Until `hostile` is set every request is answered like a healthy
    receiver would (the challenge echoed, events 200)."""

    behaviour: Behaviour
    port: int = field(default_factory=free_port)
    hostile: bool = False
    verified: set[str] = field(default_factory=set)
    faults: Counter[str] = field(default_factory=Counter)  # path (or "?" if unread) -> count
    flood_bytes: list[int] = field(default_factory=list)  # bytes written per flooded answer
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/h/{n}"

    @property
    def fault_count(self) -> int:
        return sum(self.faults.values())

    async def start(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._stopping.set()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection is done."""
        if self.hostile and self.behaviour is Behaviour.DEAF:
            self.faults["?"] += 1
            writer.transport.pause_reading()  # not even into the socket's buffer
            await self._stopping.wait()
            return False
        request = await _read_request(reader)
        if request is None:
            return False
        path, body = request
        data = orjson.loads(body) if body else {}
        if data.get("type") == "hub.verification":
            self.verified.add(path)
            await _answer(writer, 200, orjson.dumps({"challenge": data["challenge"]}))
            return True
        if not self.hostile:
            await _answer(writer, 200, b"")
            return True
        self.faults[path] += 1
        return await self._misbehave(reader, writer)

    async def _misbehave(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        match self.behaviour:
            case Behaviour.HANG:
                await reader.read()  # no answer, ever; done when the hub hangs up
                return False
            case Behaviour.RESET:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
            case Behaviour.SLOW:
                await _dribble(reader, writer, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                return False
            case Behaviour.DRIP:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                await _dribble(reader, writer, b"1\r\nx\r\n" * 100_000, DRIP_BYTE_S)
                return False
            case Behaviour.FLOOD_BODY:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"%x\r\n%s\r\n" % (FLOOD_CHUNK, b"x" * FLOOD_CHUNK)
                await self._flood(reader, writer, lambda _: chunk)
                return False
            case Behaviour.FLOOD_HEADERS:
                writer.write(b"HTTP/1.1 200 OK\r\n")
                await self._flood(reader, writer, _header_lines)
                return False
            case Behaviour.GONE:
                await _answer(writer, 410, b'{"error": "gone"}')
                return True
        return False

    async def _flood(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, piece
    ) -> None:
        """Write pieces as fast as the hub takes them, until it hangs up; note the bytes."""
        sent, n = 0, 0
        try:
            while not reader.at_eof():
                data = piece(n)
                writer.write(data)
                await writer.drain()
                sent, n = sent + len(data), n + 1
        finally:
            self.flood_bytes.append(sent)


def _header_lines(n: int) -> bytes:
    return b"".join(b"X-Pad-%d: %s\r\n" % (n * 500 + i, b"y" * 64) for i in range(500))


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, bytes] | None:
    """The path and body of the next request; None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return path, await reader.readexactly(length)


async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    reason = {200: "OK", 410: "Gone"}[status]
    writer.write(
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (status, reason.encode(), len(body), body)
    )
    await writer.drain()


async def _dribble(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    data: bytes,
    every_s: float = SLOW_BYTE_S,
) -> None:
    """Write `data` one byte at a time until it is all out or the hub hangs up."""
    for i in range(len(data)):
        if reader.at_eof() or writer.is_closing():
            return
        writer.write(data[i : i + 1])
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        await asyncio.sleep(every_s)

"""A loopback TCP forwarder to put between a client and a hub: it counts connections, keeps
what each client sent (so a test can read the request heads), and cuts every connection on
demand, abruptly (RST) or with a plain close (FIN), as a failing network or proxy would."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

KEEP_BYTES = 64 * 1024  # of each connection's client bytes, for the test to read


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    sent: bytearray = field(default_factory=bytearray)


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.links: list[_Link] = []  # every connection so far, in order
        self._open: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        return len(self.links)

    def requests(self, marker: bytes = b"GET ") -> list[bytes]:
        """The heads of the requests seen so far that start with `marker`, in order."""
        heads = []
        for link in self.links:
            for part in bytes(link.sent).split(b"\r\n\r\n"):
                start = part.find(marker)
                if start >= 0:
                    heads.append(part[start:])
        return heads

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut_all()  # each connection's task then ends by itself (a cancelled one is logged)
        await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 5)
        if self._server is not None:
            await self._server.wait_closed()

    def cut_all(self, abort: bool = True) -> int:
        """Cut every open connection at both ends; how many were open."""
        links = list(self._open)
        for link in links:
            for writer in (link.client, link.upstream):
                if abort:
                    writer.transport.abort()
                else:
                    writer.close()
        return len(links)

    async def wait_for(self, predicate, within: float = 10.0) -> None:
        """Until predicate(self) holds, checked at each new connection or chunk."""
        async with asyncio.timeout(within):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        link = _Link(writer, up_writer)
        self.links.append(link)
        self._open.add(link)
        self._changed.set()
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, link.sent), self._pipe(up_reader, writer, None)
            )
        finally:
            self._open.discard(link)
            self._tasks.discard(task)
            for end in (writer, up_writer):
                end.transport.abort()

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bytearray | None
    ) -> None:
        try:
            while data := await src.read(65536):
                if keep is not None and len(keep) < KEEP_BYTES:
                    keep += data
                dst.write(data)
                await dst.drain()
                self._changed.set()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                dst.close()

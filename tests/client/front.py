"""A loopback HTTP server in front of a hub, as a proxy or load balancer would be: it passes
every request on (streams included) except those a test tells it to answer with an error, and
keeps what it was sent so a test can count and compare the requests."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from hub.store.embedded import free_port

_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class Fault:
    """Answer `status` (with `headers`) to the next `times` requests whose path ends with
    `path_ends` (times < 0: every one). forward=True passes the request on first and drops the
    hub's answer, as a proxy that timed out after the hub did the work would."""

    method: str
    path_ends: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    forward: bool = False


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Front:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def requests(self, method: str, path_ends: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.endswith(path_ends)]

    async def __aenter__(self) -> Front:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=60), auto_decompress=False
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()  # ends the streams being passed on
        if self._runner is not None:
            await self._runner.cleanup()

    def _fault_for(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if (
                fault.times != 0
                and fault.method == request.method
                and request.path.endswith(fault.path_ends)
            ):
                fault.times -= 1 if fault.times > 0 else 0
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, dict(request.headers), body))
        fault = self._fault_for(request)
        if fault is not None and not fault.forward:
            return _refusal(fault)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body or None, headers=headers
        ) as up:
            if fault is not None:
                await up.read()
                return _refusal(fault)
            resp = web.StreamResponse(
                status=up.status,
                headers={k: v for k, v in up.headers.items() if k.lower() not in _HOP},
            )
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp


def _refusal(fault: Fault) -> web.Response:
    text = f"<html><body><h1>{fault.status}</h1></body></html>"
    return web.Response(
        status=fault.status, text=text, content_type="text/html", headers=fault.headers
    )

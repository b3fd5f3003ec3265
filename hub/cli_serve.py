"""`alerthub serve`: listen, start the embedded Redis when no other is configured, run the app."""

from __future__ import annotations

import dataclasses
import errno
import gc
import secrets
import socket
from collections.abc import Callable

from aiohttp import web

from hub.app import create_app
from hub.cli import new_event_loop
from hub.context import HUB
from hub.demo.command import register_demo_nodes
from hub.logs import hide_literal
from hub.settings import Settings
from hub.store.embedded import EmbeddedRedis

LISTEN_BACKLOG = 128  # aiohttp's own default


class ListenError(OSError):
    """The address cannot be listened on; the message says why, in one line."""


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound, listening sockets for every address `host` names (as asyncio's create_server
    binds them: SO_REUSEADDR, IPv6 sockets IPv6-only), or ListenError."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as e:
        raise ListenError(f"cannot listen on {host}:{port}: {_reason(e)}") from e
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError as e:
        for sock in sockets:
            sock.close()
        message = f"cannot listen on {host}:{port}: {_reason(e)}"
        if e.errno == errno.EADDRINUSE:
            message += " (another process listens there: stop it, or choose another --port)"
        raise ListenError(message) from e
    return sockets


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def serve(settings: Settings, host: str, port: int, demo: bool) -> int:
    """Run the hub until stopped; 0 then. The address is taken first, so that a port in use
    is reported (ListenError) before an embedded Redis starts or a demo token is printed."""
    sockets = listen(host, port)
    embedded = None
    try:
        if settings.redis_url is None:
            embedded = EmbeddedRedis(settings.data_dir, settings.appendfsync)
            settings = dataclasses.replace(settings, redis_url=embedded.start())
            print(
                f"alerthub: embedded Redis at {embedded.url} (data in {embedded.data_dir})",
                flush=True,
            )
        if demo and settings.bootstrap_token is None:
            token = "ah_op_" + secrets.token_urlsafe(24)
            settings = dataclasses.replace(settings, bootstrap_token=token)
            hide_literal(token)
        app = create_app(settings)
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, whose pauses would otherwise show in the latency tail.
        gc.freeze()
        if demo:
            app.on_startup.append(_print_demo_tokens)
        web.run_app(
            app,
            sock=sockets,
            print=_announce(sockets),
            access_log=None,
            loop=new_event_loop(),
        )
    finally:
        for sock in sockets:
            sock.close()
        if embedded is not None:
            embedded.close()
    return 0


def _announce(sockets: list[socket.socket]) -> Callable[[str], None]:
    urls = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        urls.append(f"http://{'[' + host + ']' if ':' in host else host}:{port}")

    def announce(_message: str) -> None:
        print(f"alerthub: serving on {', '.join(urls)} (Ctrl-C to stop)", flush=True)

    return announce


async def _print_demo_tokens(app: web.Application) -> None:
    hub = app[HUB]
    issued = await register_demo_nodes(hub.nodes)
    lines = ["", "Demo nodes (tokens are shown only now):"]
    lines.append(f"  {'operator':<14} {'--':<3} {'operator':<14} {hub.settings.bootstrap_token}")
    for node, token in issued:
        lines.append(f"  {node.id:<14} {node.country or '--':<3} {node.kind:<14} {token}")
    print("\n".join(lines) + "\n", flush=True)

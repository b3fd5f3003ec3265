"""`alerthub serve`: listen, start the embedded Redis when no other is configured, run the app."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import os
import secrets
import socket
from collections.abc import Callable

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.app import create_app
from hub.cli import new_event_loop
from hub.context import HUB
from hub.demo.command import register_demo_nodes
from hub.logs import hide_literal
from hub.nodes import Node, NodeRegistry
from hub.settings import Settings
from hub.store.connect import RedisConnector, check_server_version
from hub.store.embedded import EmbeddedRedis
from hub.store.keys import Keys
from hub.store.scripts import Scripts

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


def serve(settings: Settings, host: str, port: int, demo: bool, workers: int = 1) -> int:
    """Run the hub until stopped; 0 then. The address is taken first, so that a port in use
    is reported (ListenError) before an embedded Redis starts or a demo token is printed.
    With `workers` > 1, gunicorn's arbiter runs that many hub processes on the address
    (cli_workers.py), all on the one Redis started here."""
    sockets = listen(host, port)
    embedded = None
    # gunicorn's workers are forks of this process and leave through this frame too: only the
    # process that started the embedded Redis may stop it.
    owner = os.getpid()
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
        if workers > 1:
            from hub.cli_workers import run_workers

            # Once, here: a bad ALERTHUB_REDIS_URL or a Redis older than 6.2 is then one line
            # and exit 2 (hub.cli), not a boot failure in every worker.
            asyncio.run(_before_workers(settings, demo))
            return run_workers(settings, sockets, workers, _announce(sockets, settings, workers))
        app = create_app(settings)
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, whose pauses would otherwise show in the latency tail.
        gc.freeze()
        if demo:
            app.on_startup.append(_print_demo_tokens)
        web.run_app(
            app,
            sock=sockets,
            print=_announce(sockets, settings, workers),
            access_log=None,
            loop=new_event_loop(),
        )
    finally:
        if os.getpid() == owner:
            for sock in sockets:
                sock.close()
            if embedded is not None:
                embedded.close()
    return 0


def _announce(
    sockets: list[socket.socket], settings: Settings, workers: int
) -> Callable[[str], None]:
    urls = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        urls.append(f"http://{'[' + host + ']' if ':' in host else host}:{port}")
    how = "" if settings.role == "all" else f", role {settings.role}"
    if workers > 1:
        how += f", {workers} workers"

    def announce(_message: str) -> None:
        print(f"alerthub: serving on {', '.join(urls)}{how} (Ctrl-C to stop)", flush=True)

    return announce


async def _print_demo_tokens(app: web.Application) -> None:
    hub = app[HUB]
    _print_tokens(hub.settings, await register_demo_nodes(hub.nodes))


async def _before_workers(settings: Settings, demo: bool) -> None:
    """The Redis checked (hub.store.connect), and with `demo` the demo nodes registered, once
    before gunicorn's workers start."""
    assert settings.redis_url is not None
    connector = RedisConnector.from_url(settings.redis_url)
    client = connector.client(max_connections=4)
    try:
        # A Redis that does not answer is left to the workers, which report it (exit 3).
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
            await check_server_version(client)
        if demo:
            nodes = NodeRegistry(client, Keys(settings.key_prefix), Scripts.register(client))
            _print_tokens(settings, await register_demo_nodes(nodes))
    finally:
        await client.aclose()
        await connector.aclose()


def _print_tokens(settings: Settings, issued: list[tuple[Node, str]]) -> None:
    lines = ["", "Demo nodes (tokens are shown only now):"]
    lines.append(f"  {'operator':<14} {'--':<3} {'operator':<14} {settings.bootstrap_token}")
    for node, token in issued:
        lines.append(f"  {node.id:<14} {node.country or '--':<3} {node.kind:<14} {token}")
    print("\n".join(lines) + "\n", flush=True)

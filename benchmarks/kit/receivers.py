"""The receiving side of benchmarks/fanout.py, run as its own process so that it does not share
an event loop (or the GIL) with the publisher or the hub (benchmarks/kit/receiver_control.py
starts and drives it).

    python -m benchmarks.kit.receivers webhook --subs 50
    python -m benchmarks.kit.receivers sse --config streams.json

webhook: one aiohttp server on a free loopback port with the paths /hook/0 .. /hook/<subs-1>;
it echoes the hub's verification challenge and records, for every other POST, its arrival time
(time.time(), after the body is read), the path's index, the event's hub_id and type.

sse: one `GET /v1/subscriptions/{id}/events` stream per entry of the config file
({"base_url", "streams": [{"index", "sub_id", "token"}, ...]}), all on one aiohttp client
session; frames are split on blank lines as they arrive and each event is recorded like a
webhook delivery. A dropped stream reconnects with Last-Event-ID (and is counted).

Control, one JSON line per answer on stdout, commands on stdin:
    (at start)   -> {"ready": true, "port": P}   webhook: listening; sse: every stream open
    count        -> {"count": N}                 distinct (index, hub_id) pairs received so far
    dump <path>  -> {"dumped": <path>}           writes every record as JSON to <path>
    (end of stdin)                               exits
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from hub.cli import new_event_loop
from hub.store.embedded import free_port

VERIFICATION = b"hub.verification"
RETRY_S = 0.5


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def json_field(body: bytes, name: bytes) -> str | None:
    """The first string value of `"name":"..."` in compact JSON (the hub's orjson output puts
    the event's own fields before the alert's), without parsing the whole document."""
    marker = b'"' + name + b'":"'
    start = body.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = body.find(b'"', start)
    return body[start:end].decode() if end > start else None


@dataclass
class Records:
    """What one receiver process saw: (index, hub_id, time) per event, and counters."""

    events: list[tuple[int, str, float]] = field(default_factory=list)
    seen: set[tuple[int, str]] = field(default_factory=set)
    types: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    verifications: int = 0
    reconnects: int = 0

    def add(self, index: int, hub_id: str | None, event_type: str | None, t: float) -> None:
        if hub_id is None:
            self.problems["event without hub_id"] += 1
            return
        self.events.append((index, hub_id, t))
        self.seen.add((index, hub_id))
        self.types[event_type or "?"] += 1

    def dump(self, path: Path) -> None:
        data = {
            "events": self.events,
            "types": dict(self.types),
            "problems": dict(self.problems),
            "verifications": self.verifications,
            "reconnects": self.reconnects,
        }
        path.write_bytes(orjson.dumps(data))


# ---------------------------------------------------------------------------------------------
# Webhooks


def webhook_app(records: Records, subs: int) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        t = time.time()
        index = int(request.match_info["index"])
        if not 0 <= index < subs:
            records.problems["unknown path"] += 1
            return web.Response(status=404)
        if VERIFICATION in body[:80]:
            data = orjson.loads(body)
            if data.get("type") == "hub.verification":
                records.verifications += 1
                return web.Response(body=orjson.dumps({"challenge": data["challenge"]}))
        records.add(index, json_field(body, b"hub_id"), json_field(body, b"type"), t)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook/{index}", hook)
    return app


async def start_webhooks(records: Records, subs: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(webhook_app(records, subs), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    return runner, port


# ---------------------------------------------------------------------------------------------
# Server-Sent Events


def parse_frame(frame: bytes) -> tuple[str | None, str | None, bytes]:
    """(id, event, data) of one SSE frame; comments and `retry:` give (None, None, b"")."""
    event_id = event = None
    data = b""
    for line in frame.split(b"\n"):
        if line.startswith(b"id: "):
            event_id = line[4:].decode()
        elif line.startswith(b"event: "):
            event = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
    return event_id, event, data


@dataclass
class Stream:
    index: int
    sub_id: str
    token: str
    last_id: str | None = None
    opened: bool = False


class SseClients:
    def __init__(self, base_url: str, streams: list[Stream], records: Records) -> None:
        self.base_url = base_url
        self.streams = streams
        self.records = records
        self.all_open = asyncio.Event()
        self._open = 0

    async def run(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._keep(session, s) for s in self.streams))

    async def _keep(self, session: aiohttp.ClientSession, stream: Stream) -> None:
        """Read the stream; reconnect with Last-Event-ID whenever it ends."""
        while True:
            try:
                await self._read(session, stream)
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as e:
                self.records.problems[f"stream error: {type(e).__name__}"] += 1
            self.records.reconnects += 1
            await asyncio.sleep(RETRY_S)

    async def _read(self, session: aiohttp.ClientSession, stream: Stream) -> None:
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {stream.token}"}
        if stream.last_id is not None:
            headers["Last-Event-ID"] = stream.last_id
        url = f"{self.base_url}/v1/subscriptions/{stream.sub_id}/events"
        async with session.get(url, headers=headers) as resp:
            if resp.status != 200:
                self.records.problems[f"status {resp.status}"] += 1
                return
            self._mark_open(stream)
            buffer = b""
            async for chunk in resp.content.iter_any():
                t = time.time()
                *frames, buffer = (buffer + chunk).split(b"\n\n")
                for frame in frames:
                    self._frame(stream, frame, t)

    def _mark_open(self, stream: Stream) -> None:
        if not stream.opened:
            stream.opened = True
            self._open += 1
            if self._open == len(self.streams):
                self.all_open.set()

    def _frame(self, stream: Stream, frame: bytes, t: float) -> None:
        event_id, event, data = parse_frame(frame)
        if event is None:
            return  # retry: line or heartbeat comment
        if event_id is not None:
            stream.last_id = event_id
        if not event.startswith("alert."):
            self.records.problems[f"event {event}"] += 1
            return
        self.records.add(stream.index, json_field(data, b"hub_id"), event, t)


# ---------------------------------------------------------------------------------------------
# Control


def answer(data: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")
    sys.stdout.flush()


async def serve_commands(records: Records) -> None:
    """Answer count/dump commands on stdin until it closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        command, _, argument = line.partition(" ")
        if command == "count":
            answer({"count": len(records.seen)})
        elif command == "dump":
            records.dump(Path(argument))
            answer({"dumped": argument})
        else:
            answer({"error": f"unknown command {command!r}"})


async def run_webhook(subs: int) -> None:
    records = Records()
    runner, port = await start_webhooks(records, subs)
    try:
        answer({"ready": True, "port": port})
        await serve_commands(records)
    finally:
        await runner.cleanup()


async def run_sse(config: dict[str, Any], open_timeout: float) -> None:
    streams = [Stream(s["index"], s["sub_id"], s["token"]) for s in config["streams"]]
    records = Records()
    clients = SseClients(config["base_url"], streams, records)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        task = asyncio.create_task(clients.run(session))
        try:
            await asyncio.wait_for(clients.all_open.wait(), open_timeout)
            answer({"ready": True, "open": len(streams)})
        except TimeoutError:
            opened = sum(s.opened for s in streams)
            answer({"ready": False, "open": opened, "problems": dict(records.problems)})
        try:
            await serve_commands(records)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmarks/fanout.py's receivers")
    sub = parser.add_subparsers(dest="mode", required=True)
    hooks = sub.add_parser("webhook")
    hooks.add_argument("--subs", type=int, required=True, help="paths /hook/0 .. /hook/<subs-1>")
    sse = sub.add_parser("sse")
    sse.add_argument("--config", type=Path, required=True)
    sse.add_argument("--open-timeout", type=float, default=60.0)
    args = parser.parse_args()
    raise_fd_limit()
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    if args.mode == "webhook":
        loop.run_until_complete(run_webhook(args.subs))
    else:
        loop.run_until_complete(run_sse(orjson.loads(args.config.read_bytes()), args.open_timeout))
    loop.close()


if __name__ == "__main__":
    main()

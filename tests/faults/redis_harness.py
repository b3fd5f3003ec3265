"""What the Redis fault tests share: a Redis server of the test's own that can be SIGKILLed and
restarted on the same files and port, a real hub process on it, an HTTP client that records every
answer (or the lack of one) instead of raising, and a load of concurrent posts."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from hub.store.embedded import RedisServer, free_port, start_redis_server
from hub.store.keys import Keys
from tests.conftest import OPERATOR_TOKEN
from tests.hubproc import HubProcess

KEYS = Keys()
# The client's own bound on one request; the hub's Redis timeouts (5 s) keep it well inside.
REQUEST_TIMEOUT_S = 10.0


@dataclass
class OwnRedis:
    """A redis-server on a fixed loopback port with its files (append-only file on, as the
    embedded configuration ships it) in `data_dir`, so that a restart after a SIGKILL finds the
    same data at the same address. `faults` counts the kills and memory flips done to it."""

    data_dir: Path
    fsync: str = "everysec"
    port: int = field(default_factory=free_port)
    server: RedisServer | None = None
    faults: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        # A later line of redis.conf overrides the embedded configuration's `everysec`.
        extra = () if self.fsync == "everysec" else (f"appendfsync {self.fsync}",)
        self.server = start_redis_server(self.data_dir, port=self.port, extra_config=extra)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last fsync; only what Redis had written to the file stays."""
        assert self.server is not None and self.server.process is not None
        os.kill(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait()
        self.server = None
        self.faults += 1

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self) -> Redis:
        return Redis.from_url(self.url)


def hub_env(redis_url: str, **extra: str) -> dict[str, str]:
    """A hub on `redis_url` with receivers allowed on loopback and quick webhook retries."""
    return {
        "ALERTHUB_REDIS_URL": redis_url,
        "ALERTHUB_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
        "ALERTHUB_RATE_LIMIT_PER_MINUTE": "1000000",
        "ALERTHUB_LOG_LEVEL": "warning",
        "ALERTHUB_ALLOW_PRIVATE_WEBHOOKS": "true",
        "ALERTHUB_RETRY_SCHEDULE": "0,0.2,0.5,1,1,1,1,1",
        "ALERTHUB_WEBHOOK_TIMEOUT_S": "2",
        **extra,
    }


async def start_hub(redis_url: str, cwd: Path) -> HubProcess:
    return await asyncio.to_thread(HubProcess(env=hub_env(redis_url), cwd=cwd).start)


@dataclass(frozen=True)
class Answer:
    """One request's outcome: status None when no HTTP answer came (connection cut, or the
    client's bound ran out)."""

    status: int | None
    body: Any
    retry_after: str | None
    started: float
    ended: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class HubClient:
    """HTTP to one hub process with the tokens of the nodes it added; counts what it sent."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url
        self.tokens = {"operator": OPERATOR_TOKEN}
        self.made = 0
        self.failed = 0  # no answer, or an answer other than 2xx

    async def request(
        self, method: str, path: str, node: str | None = None, body: Any = None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {self.tokens[node]}"} if node else {}
        started = time.monotonic()
        self.made += 1
        try:
            async with (
                asyncio.timeout(REQUEST_TIMEOUT_S),
                self.session.request(
                    method, self.base_url + path, json=body, headers=headers
                ) as resp,
            ):
                raw = await resp.read()
                answer = Answer(
                    resp.status,
                    _parse(raw),
                    resp.headers.get("Retry-After"),
                    started,
                    time.monotonic(),
                )
        except (aiohttp.ClientError, TimeoutError) as e:
            answer = Answer(None, None, None, started, time.monotonic(), error=repr(e))
        if not answer.ok:
            self.failed += 1
        return answer

    async def ok(self, method: str, path: str, node: str | None = None, body: Any = None) -> Any:
        """The body of a request that must succeed."""
        answer = await self.request(method, path, node, body)
        assert answer.ok, (method, path, answer)
        return answer.body

    async def add_node(
        self, node_id: str, country: str, roles: tuple[str, ...] = ("publish", "subscribe")
    ) -> None:
        body = {
            "id": node_id,
            "name": node_id,
            "country": country,
            "kind": "government",
            "roles": list(roles),
        }
        self.tokens[node_id] = (await self.ok("POST", "/v1/nodes", "operator", body))["token"]

    async def subscribe(
        self, owner: str, filter_: dict[str, Any], delivery: dict[str, Any] | None = None
    ) -> str:
        body = {"filter": filter_, "delivery": delivery or {"type": "pull"}}
        return (await self.ok("POST", "/v1/subscriptions", owner, body))["id"]

    async def post(self, node: str, alert: dict[str, Any]) -> Answer:
        return await self.request("POST", "/v1/alerts", node, alert)

    async def feed(self, owner: str, sub_id: str) -> list[dict[str, Any]]:
        """Every event the pull feed holds, page by page."""
        events: list[dict[str, Any]] = []
        after = ""
        while True:
            query = f"?limit=1000&after={after}" if after else "?limit=1000"
            page = await self.ok("GET", f"/v1/subscriptions/{sub_id}/feed{query}", owner)
            events += page["events"]
            if not page["events"]:
                return events
            after = page["next"]

    async def ready(self) -> bool:
        return (await self.request("GET", "/readyz")).status == 200


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float, what: str, interval: float = 0.05
) -> None:
    """Until `check()` is true; AssertionError naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}"
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class Attempt:
    node: str
    alert: dict[str, Any]
    answer: Answer


class Load:
    """`concurrency` clients, each posting fresh alerts (`make(n)` gives the n-th as (node,
    alert)) one after another until stopped, pausing `backoff_s` after a refusal as a client
    would; every answer is kept."""

    def __init__(
        self,
        client: HubClient,
        make: Callable[[int], tuple[str, dict[str, Any]]],
        concurrency: int,
        backoff_s: float = 0.05,
    ) -> None:
        self.attempts: list[Attempt] = []
        self._client = client
        self._make = make
        self._backoff_s = backoff_s
        self._numbers = itertools.count()
        self._stopping = asyncio.Event()
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(concurrency)]

    async def _worker(self) -> None:
        while not self._stopping.is_set():
            node, alert = self._make(next(self._numbers))
            answer = await self._client.post(node, alert)
            self.attempts.append(Attempt(node, alert, answer))
            if not answer.ok:
                await asyncio.sleep(self._backoff_s)

    async def until(self, done: Callable[[list[Attempt]], bool], within: float, what: str) -> None:
        async def check() -> bool:
            return done(self.attempts)

        await wait_for(check, within, what, interval=0.01)

    async def stop(self) -> list[Attempt]:
        self._stopping.set()
        await asyncio.gather(*self._tasks)
        return self.attempts


async def log_entries(redis: Redis) -> list[tuple[str, dict[str, str]]]:
    """The event log's alert entries (not the nodes' registrations), as (entry id, fields)."""
    return [
        (entry_id.decode(), {k.decode(): v.decode() for k, v in fields.items()})
        for entry_id, fields in await redis.xrange(KEYS.events)
        if fields[b"type"] != b"node_registered"
    ]

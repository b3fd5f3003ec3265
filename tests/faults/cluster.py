"""What the hub-kill fault tests share: hub processes on fixed loopback ports that can be
SIGKILLed and restarted (each kill counted), slow webhook receivers that show when a delivery is
in flight, a client that moves to another live process when one dies under it, and the checks of
feeds and webhook deliveries against the sharing model of tests/feed_model.py."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from redis.asyncio import Redis

from hub.delivery.signing import verify
from hub.store.embedded import free_port
from hub.store.keys import Keys
from tests.conftest import OPERATOR_TOKEN
from tests.fanout_groups import DEFAULT_SHARDS
from tests.fanout_groups import fanned_out as fanned_out_in
from tests.feed_model import NODES, Report, Sub, expected_feed, first_difference
from tests.hubproc import HubProcess
from tests.receivers import Receiver

KEYS = Keys()
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Quick retries and a short webhook timeout keep recovery within a test's time: the delivery
# lease of a killed process lapses after 4.5 × timeout + 10 s (app.py).
HUB_ENV = {
    "ALERTHUB_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
    "ALERTHUB_RATE_LIMIT_PER_MINUTE": "1000000",
    "ALERTHUB_LOG_LEVEL": "warning",
    "ALERTHUB_ALLOW_PRIVATE_WEBHOOKS": "1",
    "ALERTHUB_RETRY_SCHEDULE": "0,0.2,0.5,1,1,1,1,1,1,1,1,1",
    "ALERTHUB_WEBHOOK_TIMEOUT_S": "1",
}


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], within: float, what: str, every: float = 0.05
) -> None:
    """Until `predicate()` holds; AssertionError naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(every)


@dataclass
class Cluster:
    """`size` hub processes on one Redis, each on a port of its own that a restart reuses (so
    clients find it again), each incarnation logging to a folder of its own."""

    redis_url: str
    root: Path
    size: int
    ports: list[int] = field(default_factory=list)
    procs: list[HubProcess | None] = field(default_factory=list)
    up: list[bool] = field(default_factory=list)
    kills: int = 0
    incarnations: itertools.count = field(default_factory=itertools.count)
    env: dict[str, str] = field(default_factory=dict)  # beside HUB_ENV

    def __post_init__(self) -> None:
        self.ports = [free_port() for _ in range(self.size)]
        self.procs = [None] * self.size
        self.up = [False] * self.size

    def url(self, slot: int) -> str:
        return f"http://127.0.0.1:{self.ports[slot]}"

    async def start(self, slot: int) -> None:
        cwd = self.root / f"hub{slot}-{next(self.incarnations)}"
        cwd.mkdir(parents=True)
        env = {**HUB_ENV, **self.env, "ALERTHUB_REDIS_URL": self.redis_url}
        proc = HubProcess(env=env, cwd=cwd, port=self.ports[slot])
        self.procs[slot] = proc
        await asyncio.to_thread(proc.start)
        self.up[slot] = True

    async def start_all(self) -> None:
        for slot in range(self.size):
            await self.start(slot)

    def kill(self, slot: int) -> None:
        """SIGKILL: no shutdown, no lease released, nothing flushed."""
        proc = self.procs[slot]
        assert proc is not None and proc.process is not None
        self.up[slot] = False
        os.kill(proc.process.pid, signal.SIGKILL)
        proc.process.wait()
        self.kills += 1

    def live(self) -> list[int]:
        return [slot for slot in range(self.size) if self.up[slot]]

    def slot_of(self, lease_owner: bytes | None) -> int | None:
        """The slot whose process holds a lease (owners are host:pid:random, leases.py)."""
        for slot, proc in enumerate(self.procs):
            if (
                lease_owner
                and proc
                and proc.process
                and f":{proc.process.pid}:" in lease_owner.decode()
            ):
                return slot
        return None

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.root.glob("*/hub-*.log")))

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.process is not None and proc.process.poll() is None:
                proc.stop()


@dataclass
class Hook(Receiver):
    """A Receiver (verification answered, every delivery recorded on arrival) that answers each
    event `delay_s` late, counting the deliveries it holds meanwhile in `in_flight`."""

    delay_s: float = 0.0
    in_flight: int = 0
    secret: str = ""

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        if self.delay_s and orjson.loads(await request.read()).get("type") != "hub.verification":
            self.in_flight += 1
            try:
                await asyncio.sleep(self.delay_s)
            finally:
                self.in_flight -= 1
        return response

    def release(self) -> None:
        """Answer the deliveries held by `hang`, and hold no more."""
        self.hang = False
        self._released.set()

    def received(self) -> dict[str, dict[str, Any]]:
        """Each event received, by webhook-id, after checking every delivery's signature and
        that repeats of one id carry the same event."""
        out: dict[str, dict[str, Any]] = {}
        for delivery in self.deliveries:
            verify(self.secret, delivery.headers, delivery.body)
            event = delivery.event
            assert delivery.headers["webhook-id"] == event["id"]
            earlier = out.setdefault(event["id"], event)
            assert (earlier["type"], earlier["hub_id"]) == (event["type"], event["hub_id"])
        return out


class Client:
    """HTTP to whichever processes of a Cluster are up. A request that meets a dead process
    (refused, reset, cut off mid-answer) or a 503 goes to another live one; a POST is retried
    with the same body, so the hub's idempotency (same sender, id and revision) must keep an
    unknown outcome from becoming a second record."""

    def __init__(self, session: aiohttp.ClientSession, cluster: Cluster, rng: random.Random):
        self.session = session
        self.cluster = cluster
        self.rng = rng
        self.tokens = {"operator": OPERATOR_TOKEN}
        self.retries = 0  # requests sent again after a connection error or a 503
        self.unknown = 0  # of those, ones whose first outcome was unknown (sent, no answer)

    def auth(self, node: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[node]}"}

    async def call(
        self, method: str, path: str, node: str, body: Any = None, within: float = 30.0
    ) -> tuple[int, Any, bool]:
        """(status, JSON body, whether an earlier try may have reached the hub)."""
        deadline = time.monotonic() + within
        unsure = False
        last_error = "no process up"
        while True:
            live = self.cluster.live()
            if live:
                url = self.cluster.url(self.rng.choice(live)) + path
                try:
                    async with self.session.request(
                        method, url, json=body, headers=self.auth(node), timeout=REQUEST_TIMEOUT
                    ) as resp:
                        data = await resp.json()
                        if resp.status != 503:
                            return resp.status, data, unsure
                        last_error = f"503 {data}"
                except aiohttp.ClientConnectorError as e:
                    last_error = repr(e)  # refused: nothing was sent
                except (aiohttp.ClientError, TimeoutError) as e:
                    last_error = repr(e)
                    if not unsure:
                        self.unknown += 1
                    unsure = True
                self.retries += 1
            assert time.monotonic() < deadline, (
                f"no live hub answered {method} {path}: {last_error}"
            )
            await asyncio.sleep(0.02)

    async def add_nodes(self) -> None:
        for node in NODES.values():
            status, data, _ = await self.call("POST", "/v1/nodes", "operator", node.body())
            assert status == 201, data
            self.tokens[node.id] = data["token"]

    async def subscribe(self, owner: str, filter_: dict[str, Any], hook: Hook | None = None) -> Sub:
        delivery = {"type": "webhook", "url": hook.url} if hook else {"type": "pull"}
        body = {"filter": filter_, "delivery": delivery}
        status, data, _ = await self.call("POST", "/v1/subscriptions", owner, body)
        assert status == 201, data
        if hook is not None:
            hook.secret = data["secret"]
        return Sub(owner, filter_, data["id"])

    async def wait_active(self, sub: Sub, within: float = 20.0) -> None:
        async def active() -> bool:
            status, data, _ = await self.call("GET", f"/v1/subscriptions/{sub.id}", sub.owner)
            assert status == 200, data
            return data["status"] == "active"

        await wait_for(active, within, f"subscription {sub.id} to be verified")

    async def post(self, report: Report) -> tuple[str, bool]:
        """Post one report until a 2xx; record the hub id; (status answered, whether a
        retry followed an unknown outcome)."""
        status, data, unsure = await self.call("POST", "/v1/alerts", report.sender, report.body)
        assert status in (200, 201), (status, data)
        report.hub_id = data["hub_id"]
        return data["status"], unsure

    async def post_batch(self, reports: list[Report]) -> None:
        body = {"alerts": [r.body for r in reports]}
        status, data, unsure = await self.call("POST", "/v1/alerts/batch", reports[0].sender, body)
        assert status == 200 and not unsure, (status, data)
        for report, result in zip(reports, data["results"], strict=True):
            assert result["status"] == report.expected_status, (report.body["id"], result)
            report.hub_id = result["hub_id"]

    async def feed(self, sub: Sub) -> list[tuple[str, str, str]]:
        events: list[dict[str, Any]] = []
        after = ""
        while True:
            path = f"/v1/subscriptions/{sub.id}/feed?limit=200" + (
                f"&after={after}" if after else ""
            )
            status, data, _ = await self.call("GET", path, sub.owner)
            assert status == 200, data
            if not data["events"]:
                return [(e["id"], e["type"], e["hub_id"]) for e in events]
            events += data["events"]
            after = data["next"]


async def fanned_out(redis: Redis, shards: int = DEFAULT_SHARDS) -> bool:
    """Whether every fan-out shard's group has read and acknowledged the whole event log."""
    return await fanned_out_in(redis, KEYS, shards)


async def check_feed(
    redis: Redis, client: Client, sub: Sub, log: list[tuple[str, Report]]
) -> list[tuple[str, str, str]]:
    """The subscription's feed, in Redis and by pull, is exactly what the model expects, in
    log order: no event missing, none twice, none its filter or the sharing policy excludes."""
    expected = await check_stored_feed(redis, sub, log)
    assert await client.feed(sub) == expected, (sub.owner, sub.filter)
    return expected


async def check_stored_feed(
    redis: Redis, sub: Sub, log: list[tuple[str, Report]]
) -> list[tuple[str, str, str]]:
    """The subscription's feed as stored in Redis is exactly what the model expects."""
    expected = expected_feed(sub, log)
    stored = await redis.xrange(KEYS.feed(sub.id))
    got = [(i.decode(), f[b"type"].decode(), f[b"hub_id"].decode()) for i, f in stored]
    assert got == expected, (sub.owner, sub.filter, first_difference(got, expected))
    return expected


def check_webhook(hook: Hook, expected: list[tuple[str, str, str]]) -> int:
    """Every expected event reached the endpoint (at least once, signed), and nothing else;
    returns how many deliveries were repeats."""
    received = hook.received()
    missing = [e for e in expected if e[0] not in received]
    extra = sorted(set(received) - {e[0] for e in expected})
    assert not missing and not extra, f"missing {missing[:3]}…, extra {extra[:3]}…"
    for event_id, kind, hub_id in expected:
        assert (received[event_id]["type"], received[event_id]["hub_id"]) == (kind, hub_id)
    return len(hook.deliveries) - len(received)

"""Hostile subscriber endpoints against a real hub process: endpoints that hang (reading the
request or not even that), reset the connection, answer byte by byte, send an endless body or
endless headers, or answer 410 Gone. The healthy subscribers beside them must get every alert
about as fast as they did before the hostile ones arrived, each hostile subscription must end
the way the delivery rules say, and the hub's memory must stay bounded.

Latency is compared with a baseline measured in the same test on the same machine, never with a
fixed figure: a loaded CI box slows both alike. Starving shows as waits of the order of the
attempt timeout (a healthy POST queued behind hanging ones), so that is the scale of the floor.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.delivery.webhook_sender import MAX_HEADER_BYTES, MAX_POSTS, MAX_RESPONSE_BYTES
from tests.conftest import OPERATOR_TOKEN, Api, unique_threat
from tests.faults.hostile_receivers import Behaviour, HostileServer
from tests.hubproc import HubProcess
from tests.receivers import Receiver

TIMEOUT_S = 1.0  # ALERTHUB_WEBHOOK_TIMEOUT_S
SCHEDULE = "0,0.5"  # two attempts, so a hostile subscription ends within seconds
HEALTHY = 20
ALERTS = 30  # per phase
RATE = 10.0  # alerts per second, open loop
MEDIAN_RATIO = 8.0  # measured 1.5-4.5 with the fixes, 350 before them
TAIL_RATIO = 10.0
# How many endpoints of each kind: more hanging ones than any per-process bound on POSTs.
HOSTILE = {
    Behaviour.HANG: 150,
    Behaviour.DEAF: 10,
    Behaviour.RESET: 10,
    Behaviour.SLOW: 4,
    Behaviour.DRIP: 4,
    Behaviour.FLOOD_BODY: 3,
    Behaviour.FLOOD_HEADERS: 3,
    Behaviour.GONE: 5,
}
MiB = 1024 * 1024


# -- helpers --------------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.1)


def rss_bytes(pid: int) -> int:
    """The process's resident set (VmRSS) from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@dataclass
class RssWatch:
    """Samples a process's RSS every 50 ms while running; keeps the largest."""

    pid: int
    peak: int = 0
    samples: int = 0
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            self.samples += 1
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


@dataclass
class Scene:
    """The hub process, its API client and the endpoints."""

    hub: HubProcess
    api: Api
    healthy: list[Receiver] = field(default_factory=list)
    hostile: dict[Behaviour, HostileServer] = field(default_factory=dict)
    subs: dict[str, tuple[Behaviour, str]] = field(default_factory=dict)  # id -> (kind, path)
    posted: dict[str, float] = field(default_factory=dict)  # hub_id -> monotonic send time

    async def subscribe(self, node: str, url: str) -> str:
        created = await self.api.subscribe(node, {"type": "webhook", "url": url})
        return created["id"]

    async def statuses(self, node: str) -> dict[str, dict[str, Any]]:
        status, body = await self.api.get(node, "/v1/subscriptions")
        assert status == 200, body
        return {s["id"]: s for s in body["subscriptions"]}

    async def post_steadily(self, tag: str) -> list[str]:
        """ALERTS unique alerts at RATE per second (open loop); their hub ids."""
        start, ids = time.monotonic(), []
        for i in range(ALERTS):
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            sent = time.monotonic()
            status, body = await self.api.post("al-cert", unique_threat(f"{tag}-{i}"))
            assert status == 201, body
            self.posted[body["hub_id"]] = sent
            ids.append(body["hub_id"])
        return ids

    async def healthy_latencies(self, hub_ids: list[str]) -> list[float]:
        """Once every healthy receiver has each of `hub_ids`: the delays from post to arrival."""
        wanted = set(hub_ids)

        async def all_arrived() -> bool:
            return all(wanted <= {d.event["hub_id"] for d in r.deliveries} for r in self.healthy)

        await eventually(all_arrived, 30, "every healthy receiver to get every alert")
        out = []
        for receiver in self.healthy:
            first: dict[str, float] = {}
            for d in receiver.deliveries:
                first.setdefault(d.event["hub_id"], d.received_at)
            out.extend(first[h] - self.posted[h] for h in hub_ids)
        return out


@pytest.fixture
async def scene(redis_url: str, tmp_path: Path) -> AsyncIterator[Scene]:
    env = {
        "ALERTHUB_REDIS_URL": redis_url,
        "ALERTHUB_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
        "ALERTHUB_RATE_LIMIT_PER_MINUTE": "1000000",
        "ALERTHUB_ALLOW_PRIVATE_WEBHOOKS": "1",
        "ALERTHUB_WEBHOOK_TIMEOUT_S": str(TIMEOUT_S),
        "ALERTHUB_RETRY_SCHEDULE": SCHEDULE,
        "ALERTHUB_LOG_LEVEL": "warning",
    }
    hub = HubProcess(env=env, cwd=tmp_path)
    healthy = [await Receiver().start() for _ in range(HEALTHY)]
    hostile = {b: await HostileServer(b).start() for b in HOSTILE}
    await asyncio.to_thread(hub.start)
    session = aiohttp.ClientSession(base_url=hub.base_url)
    try:
        yield Scene(hub, Api(session), healthy, hostile)
    finally:
        await session.close()
        await asyncio.to_thread(hub.stop)
        for server in hostile.values():
            await server.stop()
        for receiver in healthy:
            await receiver.stop()


# -- the scenario ---------------------------------------------------------------------------


@pytest.mark.timeout(150)
async def test_hostile_endpoints_leave_healthy_ones_unaffected(scene: Scene) -> None:
    """With 189 hostile endpoints beside 20 healthy ones, the healthy ones get every alert about
    as fast as before; each hostile subscription is paused (410: at once, after one request;
    the others after their retries, with dead letters) except the endless body's, whose 2xx
    acknowledges; the hub reads a capped part of each answer and its RSS stays bounded."""
    api = scene.api
    await api.add_node("al-cert", "AL", roles=("publish",))
    await api.add_node("rs-cert", "RS", roles=("subscribe",))
    await api.add_node("me-cert", "ME", roles=("subscribe",))

    # Phase 1: the healthy subscribers alone, for the baseline.
    for receiver in scene.healthy:
        await scene.subscribe("rs-cert", receiver.url)

    async def all_active(node: str) -> bool:
        return all(s["status"] == "active" for s in (await scene.statuses(node)).values())

    await eventually(lambda: all_active("rs-cert"), 20, "the healthy endpoints to verify")
    baseline = await scene.healthy_latencies(await scene.post_steadily("base"))

    # Phase 2: the hostile ones join, pass verification, then turn.
    for behaviour, count in HOSTILE.items():
        server = scene.hostile[behaviour]
        for n in range(count):
            sub_id = await scene.subscribe("me-cert", server.url(n))
            scene.subs[sub_id] = (behaviour, f"/h/{n}")
    await eventually(lambda: all_active("me-cert"), 30, "the hostile endpoints to verify")
    for server in scene.hostile.values():
        server.hostile = True
    pid = scene.hub.process.pid if scene.hub.process else 0
    rss_before = rss_bytes(pid)
    watch = RssWatch(pid)
    watch.start()
    try:
        with_hostile = await scene.healthy_latencies(await scene.post_steadily("hostile"))
        # Healthy: the same order of latency as without the hostile endpoints. The median
        # shows a general slow-down; the tail, a delivery queued behind hanging POSTs (that
        # costs about one attempt timeout, so the tail's floor is the timeout).
        base_p50, hostile_p50 = statistics.median(baseline), statistics.median(with_hostile)
        base_p95, hostile_p95 = p95(baseline), p95(with_hostile)
        print(
            f"healthy latency p50/p95/max: baseline {base_p50 * 1000:.1f}/"
            f"{base_p95 * 1000:.1f}/{max(baseline) * 1000:.1f} ms, with hostile endpoints "
            f"{hostile_p50 * 1000:.1f}/{hostile_p95 * 1000:.1f}/{max(with_hostile) * 1000:.1f} ms"
        )
        assert hostile_p50 <= MEDIAN_RATIO * base_p50, (base_p50, hostile_p50)
        assert hostile_p95 <= max(TAIL_RATIO * base_p95, TIMEOUT_S), (base_p95, hostile_p95)

        unsettled: Counter[str] = Counter()

        async def hostile_settled() -> bool:
            statuses = await scene.statuses("me-cert")
            unsettled.clear()
            for sub_id, (behaviour, path) in scene.subs.items():
                paused = statuses[sub_id]["status"] == "paused"
                if behaviour is Behaviour.FLOOD_BODY:
                    done = not paused and scene.hostile[behaviour].faults[path] >= ALERTS
                else:
                    done = paused
                if not done:
                    unsettled[behaviour] += 1
            return not unsettled

        try:
            await eventually(hostile_settled, 60, "every hostile subscription to settle")
        except AssertionError as e:
            raise AssertionError(f"{e}; not yet: {dict(unsettled)}") from None
    finally:
        await watch.stop()

    # Each hostile subscription ended as the delivery rules say.
    statuses = await scene.statuses("me-cert")
    for sub_id, (behaviour, path) in scene.subs.items():
        sub = statuses[sub_id]
        status, body = await api.get("me-cert", f"/v1/subscriptions/{sub_id}/dead-letters")
        assert status == 200
        if behaviour is Behaviour.FLOOD_BODY:
            assert sub["status"] == "active" and body["dead_letters"] == [], sub
        elif behaviour is Behaviour.GONE:
            assert "410" in sub["status_reason"], sub
            assert scene.hostile[behaviour].faults[path] == 1, (sub, body)
        else:
            assert "every attempt failed" in sub["status_reason"], sub
            assert body["dead_letters"], sub

    # Bytes read are capped: an endless body is cut off after about MAX_RESPONSE_BYTES, plus
    # what the two sockets' kernel buffers hold (never the timeout's worth at loopback speed).
    flood = scene.hostile[Behaviour.FLOOD_BODY].flood_bytes
    assert flood and max(flood) < MAX_RESPONSE_BYTES + socket_buffers(), flood

    # Memory: at most MAX_POSTS POSTs are in flight, and each may hold the capped body, aiohttp's
    # read buffer (twice its 64 KiB chunk before it stops reading) and the capped headers;
    # beyond that only a fixed 32 MiB for the interpreter's own growth (arenas, 200 workers'
    # state). An uncapped read of the endless bodies would pass this within the timeout.
    per_post = MAX_RESPONSE_BYTES + 2 * 64 * 1024 + MAX_HEADER_BYTES
    rss_bound = MAX_POSTS * per_post + 32 * MiB
    growth = watch.peak - rss_before
    print(
        f"hub RSS {rss_before / MiB:.1f} MiB before, peak {watch.peak / MiB:.1f} MiB "
        f"({watch.samples} samples); bound on growth {rss_bound / MiB:.1f} MiB"
    )
    assert growth < rss_bound

    # The 410 endpoints got nothing more after their one request, however long it has been.
    gone = scene.hostile[Behaviour.GONE]
    assert all(gone.faults[f"/h/{n}"] == 1 for n in range(HOSTILE[Behaviour.GONE]))
    print("faults injected: " + ", ".join(f"{b}={s.fault_count}" for b, s in scene.hostile.items()))


def socket_buffers() -> int:
    """The most the loopback kernel buffers can hold between the flooding server and the hub."""
    rmem = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return rmem + wmem + 4 * MiB


@pytest.mark.timeout(60)
async def test_gone_endpoints_get_nothing_after_their_410(scene: Scene) -> None:
    """A subscription whose endpoint answers 410 Gone is paused at its first 410, with the
    reason, and is sent nothing more while alerts keep coming."""
    api = scene.api
    await api.add_node("al-cert", "AL", roles=("publish",))
    await api.add_node("me-cert", "ME", roles=("subscribe",))
    server = scene.hostile[Behaviour.GONE]
    subs = {await scene.subscribe("me-cert", server.url(n)): f"/h/{n}" for n in range(40)}

    async def all_active() -> bool:
        return all(s["status"] == "active" for s in (await scene.statuses("me-cert")).values())

    await eventually(all_active, 20, "the endpoints to verify")
    server.hostile = True
    await scene.post_steadily("gone")

    async def all_paused() -> bool:
        return all(s["status"] == "paused" for s in (await scene.statuses("me-cert")).values())

    await eventually(all_paused, 20, "every 410 subscription to be paused")
    await scene.post_steadily("after")
    statuses = await scene.statuses("me-cert")
    for sub_id, path in subs.items():
        assert "410" in statuses[sub_id]["status_reason"]
        assert server.faults[path] == 1, (path, server.faults[path])

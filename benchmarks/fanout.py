"""End-to-end fan-out latency: from the `201` of `POST /v1/alerts` to a webhook receiver and to
an SSE client, receivers in processes of their own.

    .venv/bin/python benchmarks/fanout.py [--scenario webhook|sse|both] [--runs 3] [--quick]

Scenarios (defaults; see --help to change them):
- webhook: 200 alerts/s for 20 s to 50 webhook subscriptions (10 per subscriber node), all on
  one receiver process (benchmarks/fanout_receivers.py: an aiohttp server, /hook/0 .. /hook/49,
  that echoes the verification challenge and records each delivery's arrival time).
- sse: 20 alerts/s for 30 s to 1,000 pull subscriptions (100 per subscriber node), each read by
  one `GET /v1/subscriptions/{id}/events` stream; 500 streams per receiver process, two processes.

Each run of a scenario starts, in a temporary folder, a real redis-server (store/embedded.py: the
append-only file on, fsync every second, over a Unix socket, as `alerthub serve` runs it) and one
hub process (`python -m hub serve`, log level warning), registers a publishing node and the
subscribers, waits until every webhook subscription is `active` or every SSE stream is open, then
posts unique GREEN threat alerts (ingest.py's bodies: unique id and indicators, so each is a new
incident and reaches every subscription as `alert.created`) at a fixed open-loop rate from this
process. The first --warmup seconds' alerts are delivered and checked but left out of the
latencies. After the last answer it waits until every subscription has every alert, or nothing
arrived for --drain-idle seconds, or --drain-timeout passed.

Latency = the receiver's time.time() when the event was read - this process's time.time() when
the 201's status line arrived (one machine, one clock): it can be slightly negative, when the
delivery overtakes the answer. Every subscription must get every accepted alert exactly once:
`missing_at_end` counts (subscription, alert) pairs not received when the drain ended,
`queued_at_end` those of them still waiting in the hub (read from its Redis), `lost` the rest
(nowhere: never to arrive), `duplicates` repeats. CPU is the
user+system time (psutil) of the hub process and of redis-server from the first post until the
drain ended, per delivered event (so it includes the ingest of the alerts, spread over their
deliveries). `fanout_lag_*` samples, 4 times a second, the age of the oldest event-log entry the
fan-out has not read yet: near 0 while the fan-out keeps up, so that the latency is delivery's.
Nothing is pinned: on two cores the hub, Redis, the receivers and the publisher share them, as
they would on a small production machine.

Writes benchmarks/results/fanout-<UTC time>.json (every run, medians over runs, goals) and prints
a table. --profile also records the hub with py-spy in each run: the busiest hub functions go into
the JSON, the raw stacks into --profile-dir if given (else they go with the temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import math
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import aiohttp
import orjson
import psutil
import redis
import redis.asyncio
from fanout_profile import HubProfiler, summarise
from fanout_receivers import raise_fd_limit
from ingest import AlertBodies, Server, machine, percentile, start_server

from hub.cli import new_event_loop
from hub.store.embedded import RedisServer, start_redis_server
from hub.store.keys import Keys

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RECEIVERS = HERE / "fanout_receivers.py"
BOOTSTRAP_TOKEN = "bench-operator-fanout"
PUBLISHER = "bench-publisher"
GOAL_P99_MS = {"webhook": 50.0, "sse": 100.0}
SUBS_PER_NODE = {"webhook": 10, "sse": 100}
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str  # "webhook" | "sse"
    subs: int
    rate: float  # alerts per second
    duration: float  # measured seconds of publishing
    warmup: float  # seconds of publishing before them, checked but not in the latencies
    procs: int  # receiver processes


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


# ---------------------------------------------------------------------------------------------
# Redis and the hub


def hub_env(redis_url: str, log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTHUB_")}
    env.update(
        ALERTHUB_REDIS_URL=redis_url,
        ALERTHUB_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        ALERTHUB_ALLOW_PRIVATE_WEBHOOKS="true",  # the receivers are on loopback
        ALERTHUB_RATE_LIMIT_PER_MINUTE="1000000",
        # Each subscriber node reads SUBS_PER_NODE["sse"] streams at once; the per-node limit
        # (20 by default) would refuse the rest with 429.
        ALERTHUB_MAX_SSE_PER_NODE=str(max(SUBS_PER_NODE.values())),
        ALERTHUB_LOG_LEVEL=log_level,
    )
    return env


@dataclasses.dataclass
class Stack:
    """A redis-server and one hub process on it, in `folder`."""

    store: RedisServer
    hub: Server
    folder: Path

    @classmethod
    def start(cls, folder: Path, log_level: str) -> Stack:
        folder.mkdir(parents=True)
        store = start_redis_server(folder / "redis")
        try:
            argv = [sys.executable, "-m", "hub", "serve"]
            hub = start_server("hub", argv, hub_env(store.url, log_level), folder)
            try:
                hub.wait_ready("/readyz")
            except BaseException:
                hub.stop()
                raise
        except BaseException:
            store.stop()
            raise
        return cls(store, hub, folder)

    @property
    def pids(self) -> dict[str, int]:
        assert self.store.process is not None
        return {"hub": self.hub.process.pid, "redis": self.store.process.pid}

    def stop(self) -> None:
        self.hub.stop()
        self.store.stop()


class HubApi:
    """The few calls the benchmark makes, with the operator's token unless given another."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def call(
        self, method: str, path: str, body: Any = None, token: str = BOOTSTRAP_TOKEN
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.request(
            method, self.base_url + path, json=body, headers=headers
        ) as resp:
            return resp.status, orjson.loads(await resp.read() or b"null")

    async def add_node(self, node_id: str, roles: list[str], country: str) -> str:
        profile = {
            "id": node_id,
            "name": f"Benchmark {node_id}",
            "country": country,
            "kind": "government",
            "roles": roles,
        }
        status, body = await self.call("POST", "/v1/nodes", profile)
        if status != 201:
            raise RuntimeError(f"POST /v1/nodes answered {status}: {body}")
        return str(body["token"])

    async def add_subscription(self, token: str, delivery: dict[str, str]) -> str:
        status, body = await self.call("POST", "/v1/subscriptions", {"delivery": delivery}, token)
        if status != 201:
            raise RuntimeError(f"POST /v1/subscriptions answered {status}: {body}")
        return str(body["id"])

    async def status_of(self, sub_id: str) -> str:
        status, body = await self.call("GET", f"/v1/subscriptions/{sub_id}")
        return str(body["status"]) if status == 200 else f"http {status}"


async def bounded(jobs: list[Callable[[], Awaitable[T]]], limit: int = 16) -> list[T]:
    """Run the jobs at most `limit` at a time; their results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


@dataclasses.dataclass
class Subscribers:
    """The subscriptions of a run, in index order, with the token of each one's node."""

    sub_ids: list[str]
    tokens: list[str]
    publisher_token: str


async def register(
    base_url: str, scenario: Scenario, delivery_of: Callable[[int], dict[str, str]]
) -> Subscribers:
    """The publishing node, subscriber nodes, and `scenario.subs` subscriptions on them."""
    async with aiohttp.ClientSession() as session:
        api = HubApi(session, base_url)
        publisher = await api.add_node(PUBLISHER, ["publish"], "AL")
        per_node = SUBS_PER_NODE[scenario.name]
        node_count = math.ceil(scenario.subs / per_node)
        node_tokens = await bounded(
            [
                lambda n=n: api.add_node(f"bench-sub-{n}", ["subscribe"], "ME")
                for n in range(node_count)
            ]
        )
        tokens = [node_tokens[i // per_node] for i in range(scenario.subs)]
        sub_ids = await bounded(
            [
                lambda i=i: api.add_subscription(tokens[i], delivery_of(i))
                for i in range(scenario.subs)
            ]
        )
    return Subscribers(sub_ids, tokens, publisher)


async def wait_active(base_url: str, sub_ids: list[str], within_s: float = 60.0) -> None:
    """Until every webhook subscription has answered its challenge."""
    deadline = time.monotonic() + within_s
    waiting = list(sub_ids)
    async with aiohttp.ClientSession() as session:
        api = HubApi(session, base_url)
        while waiting:
            states = await bounded([lambda s=s: api.status_of(s) for s in waiting])
            waiting = [s for s, state in zip(waiting, states, strict=True) if state != "active"]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(waiting)} webhook subscriptions not active: {states}")
            await asyncio.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# Receiver processes


class ReceiverProc:
    """benchmarks/fanout_receivers.py in a process of its own, driven over stdin/stdout."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(RECEIVERS), *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
            )

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"receiver {self.process.args} gave no answer:\n{tail}")
        return orjson.loads(line)

    def ask(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclasses.dataclass
class Receivers:
    """The receiver processes of a run; `where[i]` is (process, local index) of subscription i."""

    procs: list[ReceiverProc]
    where: list[tuple[int, int]]

    def count(self) -> int:
        return sum(int(p.ask("count")["count"]) for p in self.procs)

    def dump(self, folder: Path) -> list[dict[str, Any]]:
        out = []
        for n, proc in enumerate(self.procs):
            path = folder / f"records-{n}.json"
            proc.ask(f"dump {path}", timeout=120)
            out.append(orjson.loads(path.read_bytes()))
            path.unlink()
        return out

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


def split(count: int, parts: int) -> list[tuple[int, int]]:
    """Subscription i goes to process i % parts, as that process's local index i // parts."""
    return [(i % parts, i // parts) for i in range(count)]


def start_webhook_receivers(folder: Path, scenario: Scenario) -> tuple[Receivers, list[str]]:
    """The receiver processes, and the URL of each subscription's endpoint."""
    where = split(scenario.subs, scenario.procs)
    procs: list[ReceiverProc] = []
    ports: list[int] = []
    for n in range(scenario.procs):
        local = sum(1 for p, _ in where if p == n)
        proc = ReceiverProc(["webhook", "--subs", str(local)], folder / f"webhook-{n}.log")
        procs.append(proc)
        ports.append(int(proc.read(30)["port"]))
    urls = [f"http://127.0.0.1:{ports[p]}/hook/{i}" for p, i in where]
    return Receivers(procs, where), urls


def start_sse_receivers(
    folder: Path, scenario: Scenario, base_url: str, subs: Subscribers
) -> Receivers:
    where = split(scenario.subs, scenario.procs)
    procs: list[ReceiverProc] = []
    for n in range(scenario.procs):
        streams = [
            {"index": local, "sub_id": subs.sub_ids[i], "token": subs.tokens[i]}
            for i, (p, local) in enumerate(where)
            if p == n
        ]
        config = folder / f"sse-{n}.json"
        config.write_bytes(orjson.dumps({"base_url": base_url, "streams": streams}))
        procs.append(ReceiverProc(["sse", "--config", str(config)], folder / f"sse-{n}.log"))
    receivers = Receivers(procs, where)
    for proc in procs:
        answer = proc.read(90)
        if not answer.get("ready"):
            receivers.stop()
            raise RuntimeError(f"SSE streams did not all open: {answer}")
    return receivers


# ---------------------------------------------------------------------------------------------
# Publishing


@dataclasses.dataclass(frozen=True, slots=True)
class Published:
    hub_id: str | None
    due: float  # time.time() the open loop meant to send it
    answered: float  # time.time() the answer's status line arrived
    status: str
    created: bool
    measured: bool  # after the warm-up


async def post_alert(
    session: aiohttp.ClientSession, url: str, body: bytes, due: float, measured: bool
) -> Published:
    try:
        async with session.post(url, data=body) as resp:
            answered = time.time()
            answer = orjson.loads(await resp.read())
            status = str(resp.status)
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as e:
        return Published(None, due, time.time(), type(e).__name__, False, measured)
    hub_id = answer.get("hub_id") if status == "201" else None
    created = answer.get("status") == "created"
    return Published(hub_id, due, answered, status, created, measured)


async def publish(base_url: str, token: str, scenario: Scenario) -> list[Published]:
    """Post one alert every 1/rate s (open loop: never waits for an answer to send the next)."""
    warm = round(scenario.rate * scenario.warmup)
    total = warm + round(scenario.rate * scenario.duration)
    bodies = AlertBodies()
    payloads = [bodies.next() for _ in range(total)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=60)
    url = f"{base_url}/v1/alerts"
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        wall0, perf0 = time.time() + 0.01, time.perf_counter() + 0.01
        tasks = []
        for i, body in enumerate(payloads):
            delay = perf0 + i / scenario.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due = wall0 + i / scenario.rate
            tasks.append(asyncio.create_task(post_alert(session, url, body, due, i >= warm)))
        return list(await asyncio.gather(*tasks))


# ---------------------------------------------------------------------------------------------
# Measuring


class FanoutLag:
    """A thread that samples, every `every` s, how far the fan-out is behind the event log:
    the age of the oldest log entry it has not read yet (0 when it has read them all). It
    tells a slow fan-out from slow delivery after it."""

    def __init__(self, redis_url: str, every: float = 0.25) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fanout-lag", daemon=True)
        self.samples: list[float] = []

    def _lag(self) -> float:
        events = Keys().events
        groups = self._client.xinfo_groups(events)
        last = groups[0]["last-delivered-id"] if groups else b"0-0"
        oldest = self._client.xrange(events, min=b"(" + last, max="+", count=1)
        if not oldest:
            return 0.0
        return max(0.0, time.time() - int(oldest[0][0].split(b"-")[0]) / 1000)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with contextlib.suppress(redis.RedisError, OSError):
                self.samples.append(self._lag())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._client.close()
        ordered = sorted(self.samples)
        return {
            "fanout_lag_p50_s": round(percentile(ordered, 0.5), 3),
            "fanout_lag_max_s": round(ordered[-1], 3) if ordered else math.nan,
        }


class CpuMeter:
    """User + system CPU seconds of some processes (all their threads) between start and stop."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.first: dict[str, float] = {}
        self.started = 0.0

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, proc in self.procs.items():
            times = proc.cpu_times()
            out[name] = times.user + times.system
        return out

    def start(self) -> None:
        self.first = self._sample()
        self.started = time.monotonic()

    def stop(self) -> tuple[dict[str, float], float]:
        last = self._sample()
        return {k: last[k] - self.first[k] for k in last}, time.monotonic() - self.started


@dataclasses.dataclass
class Drained:
    received: int  # distinct (subscription, alert) pairs when the drain ended
    complete_after_s: float | None  # from the last answer until all arrived; None: never
    waited_s: float


def drain(receivers: Receivers, expected: int, last_answer: float, args: Any) -> Drained:
    """Poll the receivers until all `expected` pairs arrived, none arrived for --drain-idle
    seconds, or --drain-timeout passed since the last answer."""
    started = time.monotonic()
    best, progress_at = -1, time.monotonic()
    while True:
        received = receivers.count()
        now = time.monotonic()
        if received >= expected:
            return Drained(received, round(time.time() - last_answer, 2), now - started)
        if received > best:
            best, progress_at = received, now
        if now - progress_at > args.drain_idle or now - started > args.drain_timeout:
            return Drained(received, None, now - started)
        time.sleep(0.1)


async def backlog(redis_url: str, sub_ids: list[str], webhook: bool) -> dict[str, int]:
    """Where undelivered events were when the drain ended, read from the hub's Redis: log
    entries the fan-out had not read, feed entries, and (webhooks) feed entries after each
    subscription's delivery cursor."""
    keys = Keys()
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        groups = await client.xinfo_groups(keys.events)
        last_read = groups[0]["last-delivered-id"] if groups else b"0-0"
        unread = len(await client.xrange(keys.events, min=b"(" + last_read, max="+"))
        out = {"log_entries": await client.xlen(keys.events), "fanout_unread": unread}
        lengths = [await client.xlen(keys.feed(s)) for s in sub_ids]
        out["feed_entries"] = sum(lengths)
        if webhook:
            behind = 0
            for sub_id in sub_ids:
                cursor = await client.hget(keys.delivery(sub_id), "cursor")
                low = b"(" + cursor if cursor else "-"
                behind += len(await client.xrange(keys.feed(sub_id), min=low, max="+"))
            out["webhook_undelivered"] = behind
        return out
    finally:
        await client.aclose()


async def command_calls(redis_url: str) -> dict[str, int]:
    """Redis's calls per command since it started (INFO commandstats); commands that scripts
    run count too, under their own names, beside the EVALSHA."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def calls_per_event(
    before: dict[str, int], after: dict[str, int], delivered: int, top: int = 10
) -> dict[str, Any]:
    calls = {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)}
    calls.pop("info", None)
    ranked = sorted(calls.items(), key=lambda kv: -kv[1])[:top]
    scale = 1 / delivered if delivered else math.nan
    return {
        "redis_calls_per_event": round(sum(calls.values()) * scale, 2),
        "redis_calls_per_event_by_command": {k: round(n * scale, 2) for k, n in ranked},
    }


def missing(expected: int, received: int, left: dict[str, int], subs: int) -> dict[str, int]:
    """Pairs not received when the drain ended: still queued in the hub (the fan-out had not
    read the alert; or, for webhooks, it waited after a delivery cursor; for SSE, it was in a
    feed but not yet sent), and lost, which are in neither place."""
    queued = left["fanout_unread"] * subs
    if "webhook_undelivered" in left:
        queued += left["webhook_undelivered"]
    else:
        queued += max(0, left["feed_entries"] - received)
    absent = expected - received
    return {"missing_at_end": absent, "queued_at_end": queued, "lost": max(0, absent - queued)}


def log_summary(path: Path, top: int = 10) -> list[dict[str, Any]]:
    """The hub's log lines (warnings and worse, at the default --log-level) counted by level,
    event and error, with one example of each."""
    counts: dict[tuple[str, str, str], int] = {}
    examples: dict[tuple[str, str, str], str] = {}
    with contextlib.suppress(OSError), path.open("rb") as lines:
        for line in lines:
            try:
                entry = orjson.loads(line)
                key = (entry.get("level", "?"), entry.get("event", "?"), entry.get("error", ""))
            except (orjson.JSONDecodeError, AttributeError):
                key = ("?", "not JSON", "")
            counts[key] = counts.get(key, 0) + 1
            examples.setdefault(key, line.decode(errors="replace").strip()[:400])
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [
        {"level": k[0], "event": k[1], "error": k[2], "count": n, "example": examples[k]}
        for k, n in ranked
    ]


# ---------------------------------------------------------------------------------------------
# Figures


@dataclasses.dataclass
class Latencies:
    """Latencies of the measured alerts' first deliveries, with the time each alert was due."""

    from_201: list[float] = dataclasses.field(default_factory=list)
    from_due: list[float] = dataclasses.field(default_factory=list)
    due: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Matched:
    latencies: Latencies
    distinct: int  # distinct (subscription, accepted alert) pairs received
    duplicates: int
    unexpected: int  # events for alerts this run never had accepted
    delivered: int  # every event received, repeats included


def match(
    published: list[Published], dumps: list[dict[str, Any]], where: list[tuple[int, int]]
) -> Matched:
    accepted = {p.hub_id: p for p in published if p.hub_id is not None}
    sub_of = {loc: i for i, loc in enumerate(where)}
    seen: set[tuple[int, str]] = set()
    lat = Latencies()
    duplicates = unexpected = delivered = 0
    for proc, dump in enumerate(dumps):
        for local, hub_id, t in dump["events"]:
            delivered += 1
            key = (sub_of[(proc, local)], hub_id)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            alert = accepted.get(hub_id)
            if alert is None:
                unexpected += 1
            elif alert.measured:
                lat.from_201.append(t - alert.answered)
                lat.from_due.append(t - alert.due)
                lat.due.append(alert.due)
    return Matched(lat, len(seen) - unexpected, duplicates, unexpected, delivered)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2) if not math.isnan(seconds) else math.nan


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {k: math.nan for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "min_ms")}
    return {
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p90_ms": ms(percentile(ordered, 0.90)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "max_ms": ms(ordered[-1]),
        "min_ms": ms(ordered[0]),
    }


def trend(lat: Latencies) -> dict[str, float]:
    """p50 of the deliveries of the first and of the last fifth of the measured alerts: a
    hub that keeps up has the two alike; one that falls behind, the last far above."""
    if not lat.due:
        return {"p50_first_fifth_ms": math.nan, "p50_last_fifth_ms": math.nan}
    low, high = min(lat.due), max(lat.due)
    fifth = (high - low) / 5
    first = sorted(v for d, v in zip(lat.due, lat.from_201, strict=True) if d <= low + fifth)
    last = sorted(v for d, v in zip(lat.due, lat.from_201, strict=True) if d >= high - fifth)
    return {
        "p50_first_fifth_ms": ms(percentile(first, 0.5)),
        "p50_last_fifth_ms": ms(percentile(last, 0.5)),
    }


def cpu_figures(cpu: dict[str, float], seconds: float, delivered: int) -> dict[str, Any]:
    def per_event(name: str) -> float:
        return round(1e6 * cpu[name] / delivered, 1) if delivered else math.nan

    return {
        "window_s": round(seconds, 2),
        "cpu_pct": {k: round(100 * v / seconds, 1) for k, v in cpu.items()},
        "hub_cpu_us_per_event": per_event("hub"),
        "redis_cpu_us_per_event": per_event("redis"),
        "cpu_us_per_event": {k: per_event(k) for k in cpu},
    }


def publish_figures(published: list[Published]) -> dict[str, Any]:
    answered = [p for p in published if p.status == "201"]
    ingest = sorted(p.answered - p.due for p in published if p.measured and p.status == "201")
    errors: dict[str, int] = {}
    for p in published:
        if p.status != "201":
            errors[p.status] = errors.get(p.status, 0) + 1
    return {
        "alerts_posted": len(published),
        "alerts_accepted": len(answered),
        "not_created": sum(1 for p in answered if not p.created),
        "publish_errors": errors,
        "ingest_p50_ms": ms(percentile(ingest, 0.5)),
        "ingest_p99_ms": ms(percentile(ingest, 0.99)),
    }


def receiver_figures(dumps: list[dict[str, Any]]) -> dict[str, Any]:
    types: dict[str, int] = {}
    problems: dict[str, int] = {}
    for dump in dumps:
        for source, target in ((dump["types"], types), (dump["problems"], problems)):
            for k, v in source.items():
                target[k] = target.get(k, 0) + v
    reconnects = sum(d["reconnects"] for d in dumps)
    return {"event_types": types, "receiver_problems": problems, "sse_reconnects": reconnects}


# ---------------------------------------------------------------------------------------------
# One run of a scenario


def start_receivers(
    folder: Path, scenario: Scenario, stack: Stack
) -> tuple[Receivers, Subscribers]:
    """Receivers up, subscriptions made, and every one ready to receive."""
    base_url = stack.hub.base_url
    if scenario.name == "webhook":
        receivers, urls = start_webhook_receivers(folder, scenario)
        try:
            subs = run_async(register(base_url, scenario, lambda i: webhook(urls[i])))
            run_async(wait_active(base_url, subs.sub_ids))
        except BaseException:
            receivers.stop()
            raise
        return receivers, subs
    subs = run_async(register(base_url, scenario, lambda i: {"type": "pull"}))
    return start_sse_receivers(folder, scenario, base_url, subs), subs


def webhook(url: str) -> dict[str, str]:
    return {"type": "webhook", "url": url}


def hub_code() -> dict[str, Any]:
    """The commit the hub process starts from, and hub/ files that differ from it: the hub is
    run from the working tree, which may change between runs."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", *argv], cwd=HERE.parent, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "hub")
    return {"commit": git("rev-parse", "--short", "HEAD"), "hub_changes": changed.splitlines()}


def run_scenario(
    scenario: Scenario, index: int, folder: Path, args: argparse.Namespace, label: str
) -> dict[str, Any]:
    code = hub_code()
    stack = Stack.start(folder, args.log_level)
    try:
        receivers, subs = start_receivers(folder, scenario, stack)
        try:
            return {**measure(scenario, index, stack, receivers, subs, args, label), **code}
        finally:
            receivers.stop()
    finally:
        stack.stop()


def measure(
    scenario: Scenario,
    index: int,
    stack: Stack,
    receivers: Receivers,
    subs: Subscribers,
    args: argparse.Namespace,
    label: str,
) -> dict[str, Any]:
    pids = {**stack.pids, "publisher": os.getpid()}
    pids.update({f"receiver{n}": p.process.pid for n, p in enumerate(receivers.procs)})
    meter = CpuMeter(pids)
    profile_dir = args.profile_dir or stack.folder
    profiler = HubProfiler(stack.hub.process.pid, profile_dir / f"{label}-hub-py-spy.txt")
    profiling = args.profile and profiler.start()
    calls_before = run_async(command_calls(stack.store.url))
    lag = FanoutLag(stack.store.url)
    lag.start()
    meter.start()
    published = run_async(publish(stack.hub.base_url, subs.publisher_token, scenario))
    accepted = [p for p in published if p.hub_id is not None]
    expected = len(accepted) * scenario.subs
    last_answer = max((p.answered for p in published), default=time.time())
    drained = drain(receivers, expected, last_answer, args)
    cpu, seconds = meter.stop()
    fanout_lag = lag.stop()
    calls_after = run_async(command_calls(stack.store.url))
    if profiling:
        profiler.stop()
    where_left = run_async(backlog(stack.store.url, subs.sub_ids, scenario.name == "webhook"))
    dumps = receivers.dump(stack.folder)
    matched = match(published, dumps, receivers.where)
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "run": index,
        "subscriptions": scenario.subs,
        "rate_per_s": scenario.rate,
        "expected": expected,
        "received": matched.distinct,
        **missing(expected, matched.distinct, where_left, scenario.subs),
        "duplicates": matched.duplicates,
        "unexpected": matched.unexpected,
        "measured_deliveries": len(matched.latencies.from_201),
        **spread(matched.latencies.from_201),
        "from_due": spread(matched.latencies.from_due),
        **trend(matched.latencies),
        **publish_figures(published),
        **fanout_lag,
        "complete_after_last_answer_s": drained.complete_after_s,
        "drain_waited_s": round(drained.waited_s, 1),
        "backlog_at_end": where_left,
        **cpu_figures(cpu, seconds, matched.delivered),
        **calls_per_event(calls_before, calls_after, matched.delivered),
        **receiver_figures(dumps),
        "hub_log": log_summary(stack.hub.log_path),
    }
    if profiling:
        result["profile"] = summarise(profiler.out, seconds)
    return result


# ---------------------------------------------------------------------------------------------
# Report


MEDIAN_KEYS = (
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "p50_first_fifth_ms",
    "p50_last_fifth_ms",
    "ingest_p99_ms",
    "hub_cpu_us_per_event",
    "redis_cpu_us_per_event",
    "redis_calls_per_event",
    "fanout_lag_max_s",
)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in runs if not math.isnan(r[key])]
        out[key] = round(statistics.median(values), 2) if values else math.nan
    out["hub_cpu_pct"] = round(statistics.median(r["cpu_pct"]["hub"] for r in runs), 1)
    out["redis_cpu_pct"] = round(statistics.median(r["cpu_pct"]["redis"] for r in runs), 1)
    out["missing_at_end"] = sum(r["missing_at_end"] for r in runs)
    out["lost"] = sum(r["lost"] for r in runs)
    out["duplicates"] = sum(r["duplicates"] for r in runs)
    return out


def goals(name: str, median: dict[str, Any]) -> dict[str, Any]:
    p99_met = median["p99_ms"] < GOAL_P99_MS[name]
    # Exactly once, and seen to be: every pair arrived before the drain ended.
    none_lost = median["missing_at_end"] == 0 and median["duplicates"] == 0
    return {
        "p99_max_ms": GOAL_P99_MS[name],
        "p99_met": p99_met,
        "exactly_once_met": none_lost,
        "all_met": p99_met and none_lost,
    }


def run_line(r: dict[str, Any]) -> str:
    dirty = "+" if r["hub_changes"] else " "
    return (
        f"{r['commit'] + dirty:<9} {r['scenario'] + str(r['run']):<9} "
        f"{r['subscriptions']:>5} {r['rate_per_s']:>6.0f} "
        f"{r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} "
        f"{r['p50_last_fifth_ms']:>9.1f} {r['missing_at_end']:>6} {r['lost']:>6} "
        f"{r['duplicates']:>5} "
        f"{r['cpu_pct']['hub']:>5.0f} {r['cpu_pct']['redis']:>6.0f} "
        f"{r['hub_cpu_us_per_event']:>7.0f} {r['redis_cpu_us_per_event']:>7.0f}"
    )


def summary_text(report: dict[str, Any]) -> str:
    lines = [
        "alerthub fan-out benchmark: latency from the 201 to the receiver (ms)",
        f"{'hub code':<9} {'run':<9} {'subs':>5} {'rate/s':>6} "
        f"{'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} "
        f"{'p50 last5':>9} {'miss':>6} {'lost':>6} {'dups':>5} {'hub%':>5} {'redis%':>6} "
        f"{'hub us':>7} {'redis us':>7}",
    ]
    lines += [run_line(r) for r in report["runs"]]
    commits = sorted({r["commit"] + ("+" if r["hub_changes"] else "") for r in report["runs"]})
    if len(commits) > 1:
        lines.append(f"WARNING: the hub's code changed between runs ({', '.join(commits)})")
    for name, m in report["median"].items():
        g = report["goals"][name]
        lines.append(
            f"median {name}: p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms (goal < "
            f"{g['p99_max_ms']:g} ms: {'met' if g['p99_met'] else 'MISSED'}), missing at end "
            f"{m['missing_at_end']}, lost {m['lost']}, "
            f"duplicates {m['duplicates']} ({'met' if g['exactly_once_met'] else 'MISSED'}); "
            f"hub {m['hub_cpu_us_per_event']:.0f} us + redis {m['redis_cpu_us_per_event']:.0f} "
            "us CPU per delivered event"
        )
    return "\n".join(lines)


def build_report(
    args: argparse.Namespace, scenarios: list[Scenario], runs: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    median = {s.name: medians([r for r in runs if r["scenario"] == s.name]) for s in scenarios}
    return {
        "benchmark": "alerthub fan-out: latency from the 201 to webhook receivers and SSE clients",
        **extra,
        "parameters": {
            "scenarios": [dataclasses.asdict(s) for s in scenarios],
            "runs": args.runs,
            "quick": args.quick,
            "log_level": args.log_level,
            "drain_idle_s": args.drain_idle,
            "drain_timeout_s": args.drain_timeout,
            "redis": "redis-server as `alerthub serve` runs it (store/embedded.py), Unix socket",
            "pinning": "none",
        },
        "runs": runs,
        "median": median,
        "goals": {name: goals(name, m) for name, m in median.items()},
    }


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--scenario", choices=("webhook", "sse", "both"), default="both")
    add("--runs", type=int, default=3, help="runs per scenario; medians are over runs")
    add("--quick", action="store_true", help="a smoke run: 1 run, 3 s, 10 webhooks, 100 SSE")
    add("--webhook-subs", type=int, default=50)
    add("--webhook-rate", type=float, default=200.0, help="alerts/s in the webhook scenario")
    add("--webhook-duration", type=float, default=20.0, help="measured seconds of publishing")
    add("--webhook-procs", type=int, default=1, help="webhook receiver processes")
    add("--sse-clients", type=int, default=1000)
    add("--sse-rate", type=float, default=20.0, help="alerts/s in the SSE scenario")
    add("--sse-duration", type=float, default=30.0, help="measured seconds of publishing")
    add("--sse-procs", type=int, default=2, help="SSE client processes")
    add("--warmup", type=float, default=2.0, help="seconds of publishing before the measured")
    add("--drain-idle", type=float, default=15.0, help="stop waiting after this long idle")
    add("--drain-timeout", type=float, default=420.0, help="longest wait after the last post")
    add("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    add("--profile", action="store_true", help="py-spy the hub in each run (summary in the JSON)")
    add("--profile-dir", type=Path, default=None, help="keep py-spy's raw stacks here")
    add("--out", type=Path, default=None, help="JSON result path")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup = 1, 1.0
        args.webhook_subs, args.webhook_duration = min(args.webhook_subs, 10), 3.0
        args.sse_clients, args.sse_duration = min(args.sse_clients, 100), 3.0
    if args.runs < 1 or args.webhook_subs < 1 or args.sse_clients < 1:
        parser.error("--runs, --webhook-subs and --sse-clients must be >= 1")
    return args


def scenarios_of(args: argparse.Namespace) -> list[Scenario]:
    webhook = Scenario(
        "webhook",
        args.webhook_subs,
        args.webhook_rate,
        args.webhook_duration,
        args.warmup,
        args.webhook_procs,
    )
    sse = Scenario(
        "sse", args.sse_clients, args.sse_rate, args.sse_duration, args.warmup, args.sse_procs
    )
    return {"webhook": [webhook], "sse": [sse], "both": [webhook, sse]}[args.scenario]


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    fd_limit = raise_fd_limit()
    started_at = dt.datetime.now(dt.UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    scenarios = scenarios_of(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="alerthub-fanout-") as tmp:
            for index in range(1, args.runs + 1):
                for scenario in scenarios:
                    label = f"fanout-{stamp}-{scenario.name}{index}"
                    folder = Path(tmp) / f"{scenario.name}-{index}"
                    result = run_scenario(scenario, index, folder, args, label)
                    runs.append(result)
                    print(run_line(result), flush=True)
    except KeyboardInterrupt:
        print("interrupted; processes stopped, temporary folder removed", file=sys.stderr)
        return 130
    report = build_report(
        args,
        scenarios,
        runs,
        started_at=started_at.isoformat(timespec="seconds"),
        machine=machine(),
        open_files_soft_limit=fd_limit,
    )
    out = args.out or RESULTS / f"fanout-{stamp}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    print(summary_text(report))
    print(f"wrote {out}")
    return 0 if all(g["all_met"] for g in report["goals"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Load on a hub: unique alert bodies, the nodes and subscriptions a run needs, and two
generators: closed loop (N connections, each posting as soon as its last answer came) and open
loop (one alert every 1/rate s, whatever the answers)."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import redis.asyncio

from .measurement import cpu_seconds

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# Unique, valid alert bodies, ~1.3 KB each: a template serialised once, three markers replaced.

_ID = "@ID@"
_IP = "@IP@"
_HASH = "@HASH@"


def _alert_template() -> bytes:
    alert: dict[str, Any] = {
        "id": f"al-cert-bench-{_ID}",
        "revision": 1,
        "kind": "threat",
        "title": "Phishing wave impersonating the e-Albania portal",
        "summary": (
            "SMS and e-mail lures point citizens to a cloned e-Albania login page that harvests "
            "credentials and one-time codes; the kit rotates domains every few hours and "
            "redirects to the real portal after submission."
        ),
        "severity": "critical",
        "confidence": 90,
        "tlp": "GREEN",
        "target_countries": ["AL", "ME", "XK"],
        "languages": ["sq"],
        "observed_at": "2026-11-21T10:00:00Z",
        "valid_until": "2026-12-21T00:00:00Z",
        "tags": ["phishing", "credential-harvesting", "e-government", "smishing"],
        "indicators": [
            {"type": "domain", "value": f"e-albania-gov-{_ID}.example"},
            {"type": "url", "value": f"https://e-albania-gov-{_ID}.example/login?session={_ID}"},
            {"type": "url", "value": f"https://cdn-{_ID}.example/kit/assets/app.js"},
            {"type": "ipv4", "value": _IP},
            {"type": "sha256", "value": _HASH},
            {"type": "email", "value": f"support-{_ID}@e-albania-gov.example"},
        ],
        "attack_patterns": ["T1566.002", "T1598.003"],
        "sectors": ["government", "finance"],
        "references": [
            {"url": f"https://cert.example/advisories/{_ID}", "title": "National CERT advisory"}
        ],
        "share": {"withhold_from": [], "recipients": []},
    }
    return orjson.dumps(alert)


class AlertBodies:
    """Unique alert bodies for one benchmark invocation: `next()` never repeats, so every
    alert is a new incident (answered `created`, fanned out as `alert.created`)."""

    def __init__(self) -> None:
        self._template = _alert_template()
        self._nonce = secrets.token_hex(3)
        self._counter = itertools.count(1)
        self.template_file = Path()  # set by write_template, for wrk

    def write_template(self, folder: Path) -> None:
        """The template with its markers, for benchmarks/kit/wrk_post.lua to fill in alike."""
        self.template_file = folder / "alert-template.json"
        self.template_file.write_bytes(self._template)

    def next(self) -> bytes:
        n = next(self._counter)
        tag = f"{self._nonce}-{n}".encode()
        ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}".encode()
        digest = f"{self._nonce}{n:058x}".encode()
        return (
            self._template.replace(_ID.encode(), tag)
            .replace(_IP.encode(), ip)
            .replace(_HASH.encode(), digest)
        )


# ---------------------------------------------------------------------------------------------
# Nodes and subscriptions


class HubApi:
    """The few calls the benchmarks make, with the operator's token unless given another."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, operator: str) -> None:
        self.session = session
        self.base_url = base_url
        self.operator = operator

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.operator}"}
        async with self.session.request(
            method, self.base_url + path, json=body, headers=headers
        ) as resp:
            return resp.status, orjson.loads(await resp.read() or b"null")

    async def add_node(
        self, node_id: str, roles: list[str], country: str, name: str | None = None
    ) -> str:
        """A government node; its token."""
        profile = {
            "id": node_id,
            "name": name or f"Benchmark {node_id}",
            "country": country,
            "kind": "government",
            "roles": roles,
            "defaults": {"withhold_from": []},
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


async def register_node(
    base_url: str, operator: str, node_id: str = "bench-al-cert", country: str = "AL"
) -> str:
    """A publishing node on the hub; its token."""
    async with aiohttp.ClientSession() as session:
        api = HubApi(session, base_url, operator)
        return await api.add_node(node_id, ["publish"], country, name="Benchmark AL CERT")


async def bounded(jobs: list[Callable[[], Awaitable[T]]], limit: int = 16) -> list[T]:
    """Run the jobs at most `limit` at a time; their results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


# ---------------------------------------------------------------------------------------------
# Open loop


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


async def publish(
    base_url: str, token: str, rate: float, warmup: float, duration: float
) -> list[Published]:
    """Post one alert every 1/rate s (open loop: never waits for an answer to send the next),
    for warmup + duration seconds; the alerts of the warm-up are marked not `measured`."""
    warm = round(rate * warmup)
    total = warm + round(rate * duration)
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
            delay = perf0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due = wall0 + i / rate
            tasks.append(asyncio.create_task(post_alert(session, url, body, due, i >= warm)))
        return list(await asyncio.gather(*tasks))


# ---------------------------------------------------------------------------------------------
# Closed loop


@dataclasses.dataclass
class ClosedLoopRun:
    """The requests completed inside the measured window: (finish time, latency) in seconds,
    their answers' statuses, how many 2xx answers were not `created`; the CPU seconds the
    watched processes (and this one, as "client") spent in the window; Redis rewrite polls."""

    latencies: list[tuple[float, float]]
    statuses: Counter[str]
    not_created: int
    cpu: dict[str, float]
    polls: list[tuple[float, bool]]


async def poll_rewrites(
    redis_url: str | None, stop_at: float, polls: list[tuple[float, bool]]
) -> None:
    """Append (perf_counter time, rewriting?) every 0.1 s until `stop_at`: whether the Redis at
    `redis_url` is rewriting its append-only file. Nothing when there is no Redis to watch."""
    if redis_url is None:
        return
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        while time.perf_counter() < stop_at:
            info = await client.info("persistence")
            polls.append((time.perf_counter(), bool(info["aof_rewrite_in_progress"])))
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


async def closed_loop(
    url: str,
    token: str | None,
    bodies: AlertBodies,
    connections: int,
    warmup: float,
    duration: float,
    watch: dict[str, int],
    redis_url: str | None = None,
) -> ClosedLoopRun:
    """Post for warmup + duration seconds on `connections` keep-alive connections."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    run = ClosedLoopRun([], Counter(), 0, {}, [])
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout, skip_auto_headers=("User-Agent",)
    ) as session:
        started = time.perf_counter()
        measure_from = started + warmup
        stop_at = measure_from + duration

        def sample() -> dict[str, float]:
            out = {name: cpu_seconds(pid) for name, pid in watch.items()}
            out["client"] = time.process_time()
            return out

        async def account() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            first = sample()
            await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
            last = sample()
            run.cpu.update({name: last[name] - first[name] for name in first})

        async def worker() -> None:
            while True:
                body = bodies.next()
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                try:
                    async with session.post(url, data=body) as resp:
                        answer = await resp.read()
                        status = str(resp.status)
                except (aiohttp.ClientError, TimeoutError) as e:
                    answer = b""
                    status = type(e).__name__
                t1 = time.perf_counter()
                if measure_from <= t1 <= stop_at:
                    run.latencies.append((t1, t1 - t0))
                    run.statuses[status] += 1
                    if status.startswith("2") and b'"created"' not in answer:
                        run.not_created += 1

        await asyncio.gather(
            account(),
            poll_rewrites(redis_url, stop_at, run.polls),
            *(worker() for _ in range(connections)),
        )
    return run


def split_by_rewrites(
    latencies: list[tuple[float, float]], polls: list[tuple[float, bool]], start: float
) -> tuple[float, list[float], list[float]]:
    """Seconds of rewriting after `start`, and the latencies of requests that finished during and
    outside rewrites: each request takes the state of the last poll before it finished."""
    times = [t for t, _ in polls]
    during: list[float] = []
    outside: list[float] = []
    for finished, latency in latencies:
        i = bisect.bisect_right(times, finished) - 1
        (during if i >= 0 and polls[i][1] else outside).append(latency)
    rewriting = sum(
        later - max(earlier, start)
        for (earlier, state), (later, _) in itertools.pairwise(polls)
        if state and later > start
    )
    return rewriting, sorted(during), sorted(outside)

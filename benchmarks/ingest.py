"""Ingest throughput and latency of one hub process against a bare aiohttp handler.

    .venv/bin/python benchmarks/ingest.py [--runs 3] [--duration 10] [--log-level warning|info]

Starts, in a temporary folder: a real redis-server (append-only file on, fsync every second, as in
production; reached over a Unix socket as `alerthub serve`'s embedded Redis is, or TCP with
--redis-transport tcp), one hub process (`python -m hub serve`) and one bare aiohttp server
(benchmarks/bare_server.py: parse the JSON, answer 201). This process is the load generator: an
asyncio aiohttp client with N keep-alive connections, each posting unique valid threat alerts
(unique `id` and indicators, so every answer is `created`) to `POST /v1/alerts`. Runs alternate
bare, hub, bare, hub, ... so that each hub figure has its baseline from the same minute. Each run
is a warm-up followed by a measured window; requests that complete inside the window count.

On two or more cores the servers are pinned to the first core and the client to the second, so the
client does not steal the server's CPU; redis-server runs on the client's core by default, so that
the hub's figure is the hub's (see --redis-cpu for the other placements). Each hub run gets a new
redis-server and hub process on an empty store by default (see --store). Everything runs on
127.0.0.1; every process and the temporary folder are removed at the end, also on Ctrl-C or an
error.

Writes benchmarks/results/ingest-<UTC time>.json (per-run figures, medians, ratio, goals) and
prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import datetime as dt
import itertools
import math
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import orjson
import redis
import redis.asyncio
from wrk_load import WrkRun, find_wrk, run_wrk

import hub
from hub.store.embedded import RedisServer, find_redis_server, free_port, start_redis_server

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BOOTSTRAP_TOKEN = "bench-operator-" + secrets.token_urlsafe(18)
NODE_ID = "bench-al-cert"
GOAL_RATIO = 0.35
GOAL_P99_MS = 25.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------------
# Unique, valid alert bodies, ~1.3 KB each: a template serialised once, two markers replaced.

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
    """Unique alert bodies for one benchmark invocation: `next()` never repeats."""

    def __init__(self) -> None:
        self._template = _alert_template()
        self._nonce = secrets.token_hex(3)
        self._counter = itertools.count(1)
        self.template_file = Path()  # set by write_template, for wrk

    def write_template(self, folder: Path) -> None:
        """The template with its markers, for benchmarks/wrk_post.lua to fill in the same way."""
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
# Processes, pinning, CPU accounting


@dataclasses.dataclass
class Pinning:
    server: set[int] | None
    client: set[int] | None
    redis: set[int] | None

    def describe(self) -> str:
        if self.server is None:
            return "no pinning (fewer than two usable cores, or --no-pin)"
        return (
            f"hub and bare server on cores {sorted(self.server)}, load generator on "
            f"{sorted(self.client or ())}, redis-server on {sorted(self.redis or ())}"
        )


def plan_pinning(pin: bool, redis_cpu: str) -> Pinning:
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return Pinning(None, None, None)
    server, client = {cpus[0]}, set(cpus[1:])
    redis_set = {"server": server, "client": client, "free": set(cpus)}[redis_cpu]
    return Pinning(server, client, redis_set)


def children_anywhere() -> tuple[str, ...]:
    """redis-server lines that let its forked children (append-only file rewrites, snapshots)
    run on any core, as they do unpinned in production, rather than inherit the one core that
    Redis is pinned to here."""
    cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    return (f"aof_rewrite_cpulist {cores}", f"bgsave_cpulist {cores}")


@contextlib.contextmanager
def affinity(cpus: set[int] | None) -> Iterator[None]:
    """Run the block (and every process it starts, with all their threads) on `cpus`."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclasses.dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if http_ok(self.base_url + path):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Server:
    port = free_port()
    log_path = cwd / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--port", str(port)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Server(name=name, process=process, port=port, log_path=log_path)


def hub_env(redis_url: str, log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTHUB_")}
    env.update(
        ALERTHUB_REDIS_URL=redis_url,
        ALERTHUB_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        ALERTHUB_RATE_LIMIT_PER_MINUTE=str(10**9),
        ALERTHUB_LOG_LEVEL=log_level,
    )
    return env


async def register_node(base_url: str) -> str:
    """A publishing node on the hub; its token."""
    profile = {
        "id": NODE_ID,
        "name": "Benchmark AL CERT",
        "country": "AL",
        "kind": "government",
        "roles": ["publish"],
        "defaults": {"withhold_from": []},
    }
    headers = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/v1/nodes", json=profile, headers=headers) as resp,
    ):
        text = await resp.text()
        if resp.status != 201:
            raise RuntimeError(f"POST /v1/nodes answered {resp.status}: {text}")
        return str(orjson.loads(text)["token"])


@dataclasses.dataclass
class HubStack:
    """A redis-server with its data in `folder`, one hub process on it, and a publishing node."""

    store: RedisServer
    hub: Server
    token: str

    @property
    def redis_pid(self) -> int | None:
        return self.store.process.pid if self.store.process is not None else None

    @classmethod
    def start(cls, folder: Path, args: argparse.Namespace, pinning: Pinning) -> HubStack:
        folder.mkdir(parents=True)
        with affinity(pinning.redis):
            store = start_redis_server(
                folder / "redis",
                port=free_port() if args.redis_transport == "tcp" else None,
                extra_config=children_anywhere(),
            )
        try:
            with affinity(pinning.server):
                hub_server = start_server(
                    "hub",
                    [sys.executable, "-m", "hub", "serve"],
                    hub_env(store.url, args.log_level),
                    folder,
                )
            try:
                hub_server.wait_ready("/readyz")
                token = asyncio.run(register_node(hub_server.base_url))
            except BaseException:
                hub_server.stop()
                raise
        except BaseException:
            store.stop()
            raise
        return cls(store, hub_server, token)

    def stop(self) -> None:
        self.hub.stop()
        self.store.stop()


# ---------------------------------------------------------------------------------------------
# The load generator


@dataclasses.dataclass
class RunResult:
    target: str
    index: int
    alerts_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    count: int
    errors: int
    error_statuses: dict[str, int]
    not_created: int
    server_cpu_pct: float
    redis_cpu_pct: float | None
    client_cpu_pct: float
    server_cpu_us_per_alert: float
    redis_cpu_us_per_alert: float | None
    server_log_bytes: int
    # Redis's append-only file rewrites inside the measured window (polled every 0.1 s), and the
    # p99 of the requests that finished during them and outside them (None: no such request).
    rewrite_s: float | None = None
    p99_during_rewrites_ms: float | None = None
    p99_outside_rewrites_ms: float | None = None


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


async def drive_wrk(
    url: str,
    token: str | None,
    template: Path,
    connections: int,
    warmup: float,
    duration: float,
    watch: dict[str, int],
    redis_url: str | None = None,
) -> tuple[WrkRun, dict[str, float], list[tuple[float, bool]]]:
    """A warm-up wrk run, then the measured one. Returns the measured run, the CPU seconds the
    watched processes (and wrk, as "client") spent in it, and the rewrite polls of its window."""
    if warmup > 0:
        await run_wrk(url, token, template, connections, warmup)
    polls: list[tuple[float, bool]] = []
    first = {name: cpu_seconds(pid) for name, pid in watch.items()}
    poller = asyncio.ensure_future(poll_rewrites(redis_url, time.perf_counter() + duration, polls))
    measured = await run_wrk(url, token, template, connections, duration)
    cpu = {name: cpu_seconds(pid) - first[name] for name, pid in watch.items()}
    cpu["client"] = measured.client_cpu_s
    await poller
    return measured, cpu, polls


def cpu_figures(cpu: dict[str, float], seconds: float, count: int) -> dict[str, float | None]:
    """RunResult's CPU fields from the CPU seconds of "server", "client" and, if watched,
    "redis" over a window of `seconds` in which `count` alerts were answered."""

    def pct(name: str) -> float:
        return round(100 * cpu[name] / seconds, 1)

    def per_alert(name: str) -> float:
        return round(1e6 * cpu[name] / count, 1) if count else math.nan

    watched_redis = "redis" in cpu
    return {
        "server_cpu_pct": pct("server"),
        "redis_cpu_pct": pct("redis") if watched_redis else None,
        "client_cpu_pct": pct("client"),
        "server_cpu_us_per_alert": per_alert("server"),
        "redis_cpu_us_per_alert": per_alert("redis") if watched_redis else None,
    }


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


async def drive(
    url: str,
    token: str | None,
    bodies: AlertBodies,
    connections: int,
    warmup: float,
    duration: float,
    watch: dict[str, int],
    redis_url: str | None = None,
) -> tuple[
    list[tuple[float, float]], Counter[str], int, dict[str, float], list[tuple[float, bool]]
]:
    """Post for warmup + duration seconds on `connections` connections. Returns (finish time,
    latency) in seconds and the answers of the requests completed in the measured window, the CPU
    seconds that the watched processes (and this one) spent in it, and (time, rewriting) polls of
    the Redis at `redis_url`, if given."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    latencies: list[tuple[float, float]] = []
    polls: list[tuple[float, bool]] = []
    statuses: Counter[str] = Counter()
    not_created = 0
    cpu: dict[str, float] = {}
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
            cpu.update({name: last[name] - first[name] for name in first})

        async def worker() -> None:
            nonlocal not_created
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
                    latencies.append((t1, t1 - t0))
                    statuses[status] += 1
                    if status.startswith("2") and b'"created"' not in answer:
                        not_created += 1

        await asyncio.gather(
            account(),
            poll_rewrites(redis_url, stop_at, polls),
            *(worker() for _ in range(connections)),
        )
    return latencies, statuses, not_created, cpu, polls


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


def measure(
    target: str,
    index: int,
    server: Server,
    token: str | None,
    bodies: AlertBodies,
    args: argparse.Namespace,
    redis_pid: int | None,
    redis_url: str | None = None,
) -> RunResult:
    watch = {"server": server.process.pid}
    if redis_pid is not None:
        watch["redis"] = redis_pid
    log_before = server.log_path.stat().st_size
    if args.generator == "wrk":
        result = _measure_wrk(target, index, server, token, bodies, args, watch, redis_url)
        result.server_log_bytes = server.log_path.stat().st_size - log_before
        return result
    started = time.perf_counter()
    timed, statuses, not_created, cpu, polls = asyncio.run(
        drive(
            f"{server.base_url}/v1/alerts",
            token,
            bodies,
            args.connections,
            args.warmup,
            args.duration,
            watch,
            redis_url,
        )
    )
    log_bytes = server.log_path.stat().st_size - log_before
    latencies = sorted(latency for _, latency in timed)
    rewriting, during, outside = split_by_rewrites(timed, polls, started + args.warmup)

    def p99_ms(values: list[float]) -> float | None:
        return round(percentile(values, 0.99) * 1000, 2) if values else None

    count = len(latencies)
    errors = sum(n for status, n in statuses.items() if not status.startswith("2"))

    return RunResult(
        target=target,
        index=index,
        alerts_per_s=round(count / args.duration, 1),
        p50_ms=round(percentile(latencies, 0.50) * 1000, 2),
        p90_ms=round(percentile(latencies, 0.90) * 1000, 2),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        max_ms=round((latencies[-1] if latencies else math.nan) * 1000, 2),
        count=count,
        errors=errors,
        error_statuses={s: n for s, n in statuses.items() if not s.startswith("2")},
        not_created=not_created,
        **cpu_figures(cpu, args.duration, count),
        server_log_bytes=log_bytes,
        rewrite_s=round(rewriting, 1) if redis_url is not None else None,
        p99_during_rewrites_ms=p99_ms(during) if redis_url is not None else None,
        p99_outside_rewrites_ms=p99_ms(outside) if redis_url is not None else None,
    )


def _measure_wrk(
    target: str,
    index: int,
    server: Server,
    token: str | None,
    bodies: AlertBodies,
    args: argparse.Namespace,
    watch: dict[str, int],
    redis_url: str | None,
) -> RunResult:
    """One run with wrk as the load generator (--generator wrk)."""
    run, cpu, polls = asyncio.run(
        drive_wrk(
            f"{server.base_url}/v1/alerts",
            token,
            bodies.template_file,
            args.connections,
            args.warmup,
            args.duration,
            watch,
            redis_url,
        )
    )
    rewriting, _, _ = split_by_rewrites([], polls, 0.0)  # every poll is inside the window
    count = run.requests - run.non_2xx

    errors = run.non_2xx + run.socket_errors
    return RunResult(
        target=target,
        index=index,
        alerts_per_s=round(count / run.seconds, 1),
        p50_ms=round(run.p50_s * 1000, 2),
        p90_ms=round(run.p90_s * 1000, 2),
        p99_ms=round(run.p99_s * 1000, 2),
        max_ms=round(run.max_s * 1000, 2),
        count=count,
        errors=errors,
        error_statuses={"non-2xx": run.non_2xx, "socket": run.socket_errors} if errors else {},
        not_created=run.not_created,
        **cpu_figures(cpu, run.seconds, count),
        server_log_bytes=0,
        rewrite_s=round(rewriting, 1) if redis_url is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    redis_server = find_redis_server()
    version = subprocess.run(
        [redis_server, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "redis_py": redis.__version__,
        "orjson": orjson.__version__,
        "alerthub": hub.__version__,
        "redis_server": version,
    }


def medians(runs: list[RunResult]) -> dict[str, float]:
    keys = (
        "alerts_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "server_cpu_pct",
        "client_cpu_pct",
        "server_cpu_us_per_alert",
    )
    out = {k: round(statistics.median(getattr(r, k) for r in runs), 2) for k in keys}
    for k in ("rewrite_s", "p99_during_rewrites_ms", "p99_outside_rewrites_ms"):
        values = [getattr(r, k) for r in runs if getattr(r, k) is not None]
        if values:
            out[k] = round(statistics.median(values), 2)
    return out


def summary_text(report: dict[str, Any]) -> str:
    p = report["parameters"]
    lines = [
        f"alerthub ingest benchmark: {p['connections']} connections, {p['runs']} x "
        f"({p['warmup_s']} s warm-up + {p['duration_s']} s) per target, "
        f"hub log level {p['log_level']}, body ~{p['body_bytes']} B",
        f"{'run':<7} {'alerts/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'srv cpu%':>8} {'redis%':>7} {'cli cpu%':>8} {'srv us/alert':>12} "
        f"{'rewrite s':>9} {'p99 in/out of rewrites':>22}",
    ]
    for r in report["runs"]:
        redis_pct = "-" if r["redis_cpu_pct"] is None else f"{r['redis_cpu_pct']:.0f}"
        rewrite = "-" if r["rewrite_s"] is None else f"{r['rewrite_s']:.1f}"
        split = " / ".join(
            "-" if r[k] is None else f"{r[k]:.2f}"
            for k in ("p99_during_rewrites_ms", "p99_outside_rewrites_ms")
        )
        lines.append(
            f"{r['target'] + str(r['index']):<7} {r['alerts_per_s']:>9.0f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['errors']:>6} {r['server_cpu_pct']:>8.0f} "
            f"{redis_pct:>7} {r['client_cpu_pct']:>8.0f} {r['server_cpu_us_per_alert']:>12.0f} "
            f"{rewrite:>9} {split:>22}"
        )
    for target in ("bare", "hub"):
        m = report["median"][target]
        lines.append(
            f"median {target:<4}: {m['alerts_per_s']:.0f} alerts/s, p50 {m['p50_ms']:.2f} ms, "
            f"p99 {m['p99_ms']:.2f} ms, server CPU {m['server_cpu_us_per_alert']:.0f} us/alert"
            + (
                f"; p99 during / outside Redis rewrites {m['p99_during_rewrites_ms']:.2f} / "
                f"{m['p99_outside_rewrites_ms']:.2f} ms"
                if "p99_during_rewrites_ms" in m and "p99_outside_rewrites_ms" in m
                else ""
            )
        )
    g = report["goals"]
    lines.append(
        f"ratio hub/bare = {report['ratio']:.3f} (goal >= {GOAL_RATIO}: "
        f"{'met' if g['ratio_met'] else 'MISSED'}); hub p99 {report['median']['hub']['p99_ms']:.2f}"
        f" ms (goal < {GOAL_P99_MS:g} ms: {'met' if g['p99_met'] else 'MISSED'}); "
        f"errors {g['errors']}"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Hub ingest throughput/latency against a bare aiohttp handler."
    )
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per target (bare, hub alternate)")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="the hub's ALERTHUB_LOG_LEVEL (info logs one line per request, as in production)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON result path")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin servers and client to cores"
    )
    parser.add_argument(
        "--redis-transport",
        choices=("unix", "tcp"),
        default="unix",
        help="how the hub reaches redis-server: a Unix socket (as the embedded Redis of "
        "`alerthub serve` does) or TCP on loopback",
    )
    parser.add_argument(
        "--redis-cpu",
        choices=("server", "client", "free"),
        default="client",
        help="where redis-server runs when pinning: the client's core (default: Redis is a "
        "process of its own, and the hub's figure should be the hub's), the server's (the hub "
        "then also pays for its store), or any (Linux then pulls Redis onto the hub's core, "
        "which wakes it through the socket)",
    )
    parser.add_argument(
        "--store",
        choices=("fresh", "shared"),
        default="fresh",
        help="fresh (default): each hub run gets a new redis-server and hub process, so runs are "
        "alike; shared: one store for all runs, so later runs see every earlier alert and the "
        "append-only file's rewrites of the whole store",
    )
    parser.add_argument(
        "--generator",
        choices=("python", "wrk"),
        default="python",
        help="the load generator: python (default; an aiohttp client in this process, which "
        "spends ~150 us of its core per request and so caps the bare handler) or wrk (C, "
        "benchmarks/wrk_post.lua; needs wrk on PATH), which lets the bare handler run at its "
        "own pace; with wrk the p99 is not split by rewrites",
    )
    args = parser.parse_args(argv)
    if args.connections < 1 or args.runs < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--connections and --runs must be >= 1, --duration > 0, --warmup >= 0")
    return args


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.generator == "wrk":
        find_wrk()  # refuse at once, not after the servers have started
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started_at = dt.datetime.now(dt.UTC)
    machine_info = machine()  # before this process pins itself to the client's cores
    pinning = plan_pinning(args.pin, args.redis_cpu)
    bodies = AlertBodies()
    body_bytes = len(bodies.next())
    runs: list[RunResult] = []
    cleanup: list[Callable[[], None]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="alerthub-bench-") as tmp_name:
            tmp = Path(tmp_name)
            bodies.write_template(tmp)
            try:
                with affinity(pinning.server):
                    bare_argv = [sys.executable, str(HERE / "bare_server.py")]
                    bare = start_server("bare", bare_argv, dict(os.environ), tmp)
                    cleanup.append(bare.stop)
                bare.wait_ready("/healthz")
                stack: HubStack | None = None
                if pinning.client is not None:
                    os.sched_setaffinity(0, pinning.client)
                for i in range(1, args.runs + 1):
                    if stack is None or args.store == "fresh":
                        if stack is not None:
                            stack.stop()
                        stack = HubStack.start(tmp / f"store-{i}", args, pinning)
                        cleanup.append(stack.stop)
                    for target, server, tok, rpid in (
                        ("bare", bare, None, None),
                        ("hub", stack.hub, stack.token, stack.redis_pid),
                    ):
                        url = stack.store.url if target == "hub" else None
                        result = measure(target, i, server, tok, bodies, args, rpid, url)
                        runs.append(result)
                        print(
                            f"  {target}{i}: {result.alerts_per_s:.0f} alerts/s, "
                            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                            f"errors {result.errors}",
                            flush=True,
                        )
                        if server.process.poll() is not None:
                            raise RuntimeError(f"{target} died:\n{server.log_tail()}")
                aof_bytes = sum(f.stat().st_size for f in tmp.rglob("*.aof") if f.is_file())
            finally:
                for stop in reversed(cleanup):
                    with contextlib.suppress(Exception):
                        stop()
    except KeyboardInterrupt:
        print("interrupted; servers stopped, temporary folder removed", file=sys.stderr)
        return 130

    bare_runs = [r for r in runs if r.target == "bare"]
    hub_runs = [r for r in runs if r.target == "hub"]
    median = {"bare": medians(bare_runs), "hub": medians(hub_runs)}
    ratio = round(median["hub"]["alerts_per_s"] / median["bare"]["alerts_per_s"], 3)
    cpu_ratio = round(
        median["bare"]["server_cpu_us_per_alert"] / median["hub"]["server_cpu_us_per_alert"], 3
    )
    errors = sum(r.errors for r in runs)
    not_created = sum(r.not_created for r in hub_runs)
    report: dict[str, Any] = {
        "benchmark": "alerthub ingest: POST /v1/alerts, hub vs bare aiohttp handler",
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine_info,
        "parameters": {
            "connections": args.connections,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "runs": args.runs,
            "log_level": args.log_level,
            "body_bytes": body_bytes,
            "pinning": pinning.describe(),
            "redis": "redis-server as `alerthub serve` configures it (hub/store/embedded.py): "
            "appendonly yes, appendfsync everysec",
            "redis_transport": args.redis_transport,
            "store": args.store,
            "generator": args.generator,
            "hub_rate_limit_per_minute": 10**9,
        },
        "runs": [dataclasses.asdict(r) for r in runs],
        "median": median,
        "ratio": ratio,
        "cpu_cost_ratio": cpu_ratio,
        "goals": {
            "ratio_min": GOAL_RATIO,
            "p99_max_ms": GOAL_P99_MS,
            "ratio_met": ratio >= GOAL_RATIO,
            "p99_met": median["hub"]["p99_ms"] < GOAL_P99_MS,
            "errors": errors,
            "hub_answers_not_created": not_created,
            "all_met": ratio >= GOAL_RATIO
            and median["hub"]["p99_ms"] < GOAL_P99_MS
            and errors == 0,
        },
        "aof_bytes_at_end": aof_bytes,
        "notes": [
            "generator python: alerts/s counts requests completed inside the measured window "
            "after the warm-up; p50/p99 are of those requests, client-side (perf_counter around "
            "each request). generator wrk: a warm-up wrk run, then a measured one; alerts/s and "
            "the percentiles are wrk's own (benchmarks/wrk_post.lua)",
            "runs alternate bare, hub, bare, hub, ...; medians are over runs; "
            "ratio = median hub alerts/s / median bare alerts/s",
            "every alert has a unique id and unique indicators, so every hub answer is 201 "
            "created (hub_answers_not_created counts any other)",
            f"redis reached over {args.redis_transport}; "
            "one hub process and one bare process, both on the same aiohttp and event loop "
            "(uvloop where installed), access log off; "
            "the hub's log goes to a file in the temporary folder",
            f"pinning: {pinning.describe()}; cpu_pct are of one core over the measured window; "
            "a client_cpu_pct near 100 means the load generator, not the server, set the pace",
            "rewrite_s: seconds of the measured window during which redis-server rewrote its "
            "append-only file (INFO persistence polled every 0.1 s); p99_during/outside_rewrites "
            "split the hub's requests by the last poll before each finished",
            "server_cpu_us_per_alert is the server process's CPU time (all threads, /proc) per "
            "counted alert; cpu_cost_ratio = bare us/alert / hub us/alert is the throughput ratio "
            "one core would allow if neither were held back by the client",
            f"with a closed loop of {args.connections} connections, p50 >= connections / "
            "alerts/s (Little's law), so a p99 under 25 ms needs well over "
            f"{args.connections / 0.025:.0f} alerts/s",
            "store fresh: every hub run starts a new redis-server and hub process on an empty "
            "store; store shared: one store for all runs, so later hub runs see every earlier "
            "alert, and the append-only file's rewrites (at 64 MB, then whenever it doubles) copy "
            "the whole store in a forked child that competes for the two cores",
        ],
    }
    out = args.out or RESULTS / f"ingest-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    print(summary_text(report))
    print(f"wrote {out}")
    return 0 if report["goals"]["all_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

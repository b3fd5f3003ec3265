"""What the parts of benchmarks/scale.py share: hub processes and their Redis, each on a fresh
folder; their CPU from /proc; the feeds' total length; medians and ratios over runs."""

from __future__ import annotations

import contextlib
import statistics
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

from benchmarks.fanout import BOOTSTRAP_TOKEN
from benchmarks.kit.measurement import cpu_seconds
from benchmarks.kit.processes import HUB_ARGV, Server, hub_env, start_server
from hub.store.embedded import RedisServer, start_redis_server
from hub.store.keys import Keys


def env_for(redis_url: str, role: str, **extra: str) -> dict[str, str]:
    # The token fanout.register calls with; each subscriber node reads up to 100 streams at once.
    return hub_env(
        redis_url,
        BOOTSTRAP_TOKEN,
        "warning",
        ALERTHUB_MAX_SSE_PER_NODE="1000",
        ALERTHUB_ROLE=role,
        **extra,
    )


def family(pid: int) -> list[int]:
    """`pid` and its children (gunicorn's workers; the hub's own redis-server, if embedded)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(int(c) for c in children)]


def hub_cpu_s(server: Server) -> float:
    """User + system CPU seconds of a hub process and its live children (gunicorn's workers)."""
    total = 0.0
    for pid in family(server.process.pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def wait_for_workers(server: Server, count: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if len(family(server.process.pid)) == count + 1:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name}: {count} workers did not start:\n{server.log_tail()}")


def settle(servers: list[Server], within: float = 60.0, quiet: float = 0.1) -> None:
    """Until the hub processes use under `quiet` of a core: each worker loads the claim
    similarity dictionaries in a thread after it is ready (1-3 s of CPU), which would otherwise
    fall into the measured window, twice with two workers."""
    deadline = time.monotonic() + within
    last = sum(hub_cpu_s(s) for s in servers)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(hub_cpu_s(s) for s in servers)
        if now - last < quiet * 0.5:
            return
        last = now


@contextlib.contextmanager
def redis_in(folder: Path) -> Iterator[RedisServer]:
    store = start_redis_server(folder / "redis")
    try:
        yield store
    finally:
        store.stop()


def start_hub(
    folder: Path, name: str, redis_url: str, role: str, workers: int, **extra: str
) -> Server:
    """A hub process on a free port, ready; a port another process took between the free-port
    probe and the listen (this VM is shared) is retried on another. `extra`: more ALERTHUB_*
    settings."""
    for attempt in range(3):
        argv = [*HUB_ARGV, "--workers", str(workers)]
        server = start_server(name, argv, env_for(redis_url, role, **extra), folder)
        try:
            server.wait_ready("/readyz", timeout=60)
        except RuntimeError:
            if attempt < 2 and "Address already in use" in server.log_tail():
                continue
            raise
        if workers > 1:
            wait_for_workers(server, workers)
        return server
    raise AssertionError("unreachable")


@contextlib.contextmanager
def hubs_in(
    folder: Path, redis_url: str, plan: list[tuple[str, str]], workers: int = 1, **extra: str
) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for name, role in plan:
            started[name] = start_hub(folder, name, redis_url, role, workers, **extra)
        yield started
    finally:
        for server in started.values():
            server.stop()


class FeedTotal:
    """The entries in every subscription's feed together (XLEN of each, in one pipeline)."""

    def __init__(self, redis_url: str, sub_ids: list[str]) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._feeds = [Keys().feed(sub_id) for sub_id in sub_ids]

    def read(self) -> int:
        pipe = self._client.pipeline(transaction=False)
        for feed in self._feeds:
            pipe.xlen(feed)
        return int(sum(pipe.execute()))

    def close(self) -> None:
        self._client.close()


def operator_get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return bytes(resp.read())


def shards_held(server: Server) -> int:
    """`alerthub_fanout_shards_held` on a delivery process's /metrics (-1: no answer yet)."""
    try:
        text = operator_get(f"{server.base_url}/metrics").decode()
    except OSError:  # not listening yet
        return -1
    for line in text.splitlines():
        if line.startswith("alerthub_fanout_shards_held"):
            return int(float(line.split()[-1]))
    return -1


def wait_until(check: Callable[[], bool], within: float, what: str, every: float = 0.1) -> float:
    """Poll `check` every `every` s until it is true; the time.monotonic() it was seen true."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {within:.0f} s")
        time.sleep(every)
    return time.monotonic()


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def medians(runs: list[dict[str, Any]], by: str, keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for value in dict.fromkeys(r[by] for r in runs):
        mine = [r for r in runs if r[by] == value]
        out[str(value)] = {key: median_of(mine, key) for key in keys}
    return out


def ratio(top: dict[str, Any], bottom: dict[str, Any], key: str) -> float | None:
    """top[key] / bottom[key], or None when either is missing (a --quick drain too short)."""
    if not top.get(key) or not bottom.get(key):
        return None
    return round(top[key] / bottom[key], 3)

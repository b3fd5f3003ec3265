"""/metrics under `serve --workers 2`, as real processes: whichever worker answers a scrape, the
counters are the host's, summed over the workers (prometheus_client's multiprocess mode), also
after a worker was killed and replaced; the arbiter removes the shared folder when it stops."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from hub.ops.metrics import SNAPSHOT_TTL_S
from tests.conftest import OPERATOR_TOKEN, Api, unique_threat
from tests.fanout_groups import DEFAULT_SHARDS
from tests.faults.cluster import wait_for
from tests.faults.test_workers_roles import (
    holds,
    pids_answering,
    start,
    two_workers,
    worker_pids,
)
from tests.hubproc import HubProcess

POSTERS, POSTS_EACH = 4, 15
TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True)
class Scrape:
    """What one /metrics answer says: who answered, and the counts the test checks."""

    pid: int
    ingest_created: float  # from Redis: the same from any worker, with or without the sum
    alerts_created: float  # alerthub_alerts: counted in each worker's process
    alert_posts: float  # alerthub_http_requests of POST /v1/alerts, any status
    shards_held: float  # each live worker's share, summed


def read_scrape(text: str) -> Scrape:
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    pids = [int(s.labels["pid"]) for s in samples if s.name == "alerthub_process_info"]
    assert len(pids) == 1, pids

    def total(name: str, **labels: str) -> float:
        matching = (s for s in samples if s.name == name)
        return sum(s.value for s in matching if labels.items() <= s.labels.items())

    return Scrape(
        pid=pids[0],
        ingest_created=total("alerthub_ingest_total", outcome="created"),
        alerts_created=total("alerthub_alerts_total", outcome="created"),
        alert_posts=total("alerthub_http_requests_total", route="/v1/alerts", method="POST"),
        shards_held=total("alerthub_fanout_shards_held"),
    )


async def scrape(session: aiohttp.ClientSession, base_url: str) -> Scrape:
    """One /metrics scrape, on a new connection (the session closes each)."""
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    async with session.get(f"{base_url}/metrics", headers=headers, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        return read_scrape(await resp.text())


async def scrapes_until(
    session: aiohttp.ClientSession, base_url: str, wanted: set[int], posts: int
) -> set[int]:
    """Scrapes until each pid of `wanted` answered one (within 30 s, a replacement may still be
    booting); each must report `posts` alerts created and posted. The pids that answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while not wanted <= seen:
        assert time.monotonic() < deadline, f"no scrape answered by {wanted - seen}"
        got = await scrape(session, base_url)
        assert (got.ingest_created, got.alerts_created, got.alert_posts) == (posts,) * 3, got
        seen.add(got.pid)
        await asyncio.sleep(0.02)
    return seen


async def shards_summed(session: aiohttp.ClientSession, base_url: str, wanted: set[int]) -> None:
    """Until each pid of `wanted` answered a scrape whose shard count is DEFAULT_SHARDS: the
    live workers' shares summed (each settles within a membership beat or two, and is written
    every SHARE_PUBLISH_S, so a sum in between may count a moved shard twice or not at all)."""
    seen: set[int] = set()

    async def all_seen() -> bool:
        got = await scrape(session, base_url)
        if got.shards_held == DEFAULT_SHARDS:
            seen.add(got.pid)
        return wanted <= seen

    await wait_for(all_seen, 30, f"{DEFAULT_SHARDS} shards held from each of {wanted}")


def posts_by_worker(folder: Path, scratch: Path) -> dict[int, float]:
    """The POST /v1/alerts requests each worker counted, from its own file in `folder` (read
    alone through a copy in `scratch`, by prometheus_client's collector)."""
    shares = {}
    for file in folder.glob("counter_*.db"):
        alone = scratch / file.stem
        alone.mkdir(parents=True)
        shutil.copy(file, alone)
        samples = [s for m in MultiProcessCollector(None, str(alone)).collect() for s in m.samples]
        pid = int(file.stem.removeprefix("counter_"))
        shares[pid] = sum(
            s.value
            for s in samples
            if s.name == "alerthub_http_requests_total"
            and s.labels.get("route") == "/v1/alerts"
            and s.labels.get("method") == "POST"
        )
    return shares


async def post_until_both_take_some(base_url: str, folder: Path, scratch: Path) -> int:
    """Rounds of POSTERS concurrent posters on new connections, until each of the two workers
    took some posts (the kernel picks, usually both in the first round); how many were posted."""
    connector = aiohttp.TCPConnector(force_close=True)
    api = Api(aiohttp.ClientSession(base_url=base_url, timeout=TIMEOUT, connector=connector))
    try:
        await api.add_node("rs-cert")

        async def poster(name: str) -> None:
            for i in range(POSTS_EACH):
                status, body = await api.post("rs-cert", unique_threat(f"{name}-{i}"))
                assert status == 201, body

        for attempt in range(10):
            await asyncio.gather(*(poster(f"m{attempt}-{n}") for n in range(POSTERS)))
            shares = posts_by_worker(folder, scratch / f"round{attempt}")
            print(f"POST /v1/alerts by worker: {shares}")
            if len(shares) == 2 and all(shares.values()):
                return (attempt + 1) * POSTERS * POSTS_EACH
        raise AssertionError("one worker took every post of 10 rounds")
    finally:
        await api.client.close()


async def test_every_worker_answers_the_counters_summed_over_the_workers(
    redis_url: str, tmp_path: Path, hubs: list[HubProcess], session: aiohttp.ClientSession
) -> None:
    """--workers 2 with both taking posts: each scrape, from either worker, reports every alert
    posted (created count and POST requests) and all the fan-out shards held, also after one is
    SIGKILLed and replaced; SIGTERM then removes the multiprocess folder (made under TMPDIR)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"ALERTHUB_REDIS_URL": redis_url, "TMPDIR": str(tmp)}
    hub = await start(hubs, tmp_path, env, "--workers", "2")
    await two_workers(hub)
    workers = worker_pids(hub)
    await pids_answering(session, hub.base_url, workers)  # both listen before the posts
    [folder] = tmp.glob("alerthub-metrics-*")
    posts = await post_until_both_take_some(hub.base_url, folder, tmp_path)
    # Each worker answers every post, once the status documents the scrapes above left in
    # each worker's cache are stale (alerthub_ingest is read from them).
    await asyncio.sleep(SNAPSHOT_TTL_S)
    assert await scrapes_until(session, hub.base_url, workers, posts) == workers
    await shards_summed(session, hub.base_url, workers)

    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    await wait_for(lambda: holds(len(worker_pids(hub) - {victim}) == 2), 30, "a replacement")
    replacement = worker_pids(hub) - workers
    # The replacement took no post: what it answers is the others' counts, the dead one's too.
    await scrapes_until(session, hub.base_url, replacement, posts)
    # The dead worker's share left the sum with it (mark_process_dead), not counted twice.
    await shards_summed(session, hub.base_url, worker_pids(hub))

    assert await asyncio.to_thread(hub.stop) == 0
    assert not list(tmp.glob("alerthub-metrics-*"))

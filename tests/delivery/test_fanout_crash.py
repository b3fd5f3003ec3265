"""Fan-out survives crashes and stalls: real hub processes on one Redis, SIGKILLed (or stopped
and resumed late) part-way through a backlog, leave every subscription's feed with each event it
should get exactly once, in log order, as the right type.

The expectations are worked out here from API.md (filters, the TLP rules, created versus
corroborated), never asked of the hub; the event log is read only for the order (and ids) in which
the hub stored the reports.

To catch the fan-out mid-way on purpose rather than by luck (it keeps pace with ingest, so it is
never far behind a live poster), the test itself holds the fan-out lease, as a stalled third
process would, while the alerts are posted. Once it lets go, the hub meets a backlog of hundreds
of events; the test stops the lease holder (SIGSTOP) at a moment when a batch of the log is read
but not acknowledged and the feeds hold some of their events but not all, and then kills it.

The hubs here run with one fan-out shard (ALERTHUB_FANOUT_SHARDS=1), so one lease and one group
stand for the whole fan-out and a stop is aimed at a known batch; every shard runs this same
code. Many shards over several processes, killed and added, are tested in
tests/faults/test_fanout_shards.py.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from hub.store.keys import Keys
from tests.conftest import OPERATOR_TOKEN
from tests.fanout_groups import ONE_GROUP, ONE_SHARD_ENV, one_lease
from tests.feed_model import (
    NODES,
    PUBLISHERS,
    SUBSCRIPTIONS,
    Report,
    Scenario,
    Sub,
    check_clusters,
    expected_counts,
    expected_feed,
    first_difference,
    read_log,
)
from tests.hubproc import HubProcess

KEYS = Keys()
LEASE = one_lease(KEYS)
BLOCKER = "test:holds-the-fan-out"  # the lease owner that keeps every hub process waiting
# -- real processes and Redis ---------------------------------------------------------------------


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """The hub processes a test starts (start_hub); each stopped at the end, even a stopped one."""
    procs: list[HubProcess] = []
    yield procs
    for proc in procs:
        if proc.process is not None:
            if proc.process.poll() is None:
                os.kill(proc.process.pid, signal.SIGCONT)
            proc.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def new_hub(redis_url: str, tmp_path: Path) -> HubProcess:
    env = {
        "ALERTHUB_REDIS_URL": redis_url,
        "ALERTHUB_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
        "ALERTHUB_RATE_LIMIT_PER_MINUTE": "1000000",
        "ALERTHUB_LOG_LEVEL": "warning",
        **ONE_SHARD_ENV,
    }
    return HubProcess(env=env, cwd=tmp_path)


async def start_hub(hubs: list[HubProcess], redis_url: str, tmp_path: Path) -> HubProcess:
    proc = new_hub(redis_url, tmp_path)
    hubs.append(proc)
    return await asyncio.to_thread(proc.start)


async def start_held_back(
    redis: Redis, hubs: list[HubProcess], redis_url: str, tmp_path: Path, count: int
) -> list[HubProcess]:
    """`count` hub processes, none of which fans out until freeze_mid_fanout lets go of the
    lease this test takes first."""
    await redis.set(LEASE, BLOCKER, px=120_000)
    return [await start_hub(hubs, redis_url, tmp_path) for _ in range(count)]


class Client:
    """HTTP to the hub processes, with the tokens of the nodes it added."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.tokens = {"operator": OPERATOR_TOKEN}

    def auth(self, node: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[node]}"}

    async def setup(self, hub: HubProcess) -> list[Sub]:
        for node in NODES.values():
            async with self.session.post(
                f"{hub.base_url}/v1/nodes", json=node.body(), headers=self.auth("operator")
            ) as resp:
                assert resp.status == 201, await resp.text()
                self.tokens[node.id] = (await resp.json())["token"]
        subs = []
        for owner, filter_ in SUBSCRIPTIONS:
            body = {"filter": filter_, "delivery": {"type": "pull"}}
            async with self.session.post(
                f"{hub.base_url}/v1/subscriptions", json=body, headers=self.auth(owner)
            ) as resp:
                assert resp.status == 201, await resp.text()
                subs.append(Sub(owner, filter_, (await resp.json())["id"]))
        return subs

    async def post_batch(self, hub: HubProcess, reports: list[Report]) -> None:
        """Post one batch (one sender) and record what the hub answered for each report."""
        sender = reports[0].sender
        body = {"alerts": [r.body for r in reports]}
        async with self.session.post(
            f"{hub.base_url}/v1/alerts/batch", json=body, headers=self.auth(sender)
        ) as resp:
            assert resp.status == 200, await resp.text()
            results = (await resp.json())["results"]
        for report, result in zip(reports, results, strict=True):
            assert result["status"] == report.expected_status, (report.body["id"], result)
            report.hub_id, report.cluster_id = result["hub_id"], result["cluster_id"]

    async def feed(self, hub: HubProcess, sub: Sub) -> list[tuple[str, str, str]]:
        async with self.session.get(
            f"{hub.base_url}/v1/subscriptions/{sub.id}/feed?limit=1000",
            headers=self.auth(sub.owner),
        ) as resp:
            assert resp.status == 200, await resp.text()
            events = (await resp.json())["events"]
        return [(e["id"], e["type"], e["hub_id"]) for e in events]


async def feed_lengths(redis: Redis, subs: list[Sub]) -> list[int]:
    async with redis.pipeline(transaction=False) as pipe:
        for sub in subs:
            pipe.xlen(KEYS.feed(sub.id))
        return await pipe.execute()


async def fanout_state(redis: Redis, subs: list[Sub]) -> tuple[list[int], int]:
    """Each feed's length, and how many log entries the fan-out has read but not acknowledged."""
    async with redis.pipeline(transaction=False) as pipe:
        for sub in subs:
            pipe.xlen(KEYS.feed(sub.id))
        pipe.xpending(KEYS.events, ONE_GROUP)
        *lengths, pending = await pipe.execute()
    return lengths, pending["pending"]


async def settled_state(redis: Redis, subs: list[Sub]) -> tuple[list[int], int]:
    """fanout_state once two readings 20 ms apart agree (a stopped process's last commands
    may still be on their way to Redis)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    state = await fanout_state(redis, subs)
    while True:
        await asyncio.sleep(0.02)
        again = await fanout_state(redis, subs)
        if again == state:
            return state
        assert loop.time() < deadline, "the feeds kept changing under a stopped process"
        state = again


async def lease_holder(redis: Redis, hubs: list[HubProcess]) -> HubProcess:
    """The process whose identity (host:pid:random, leases.process_identity) holds the lease."""
    holder = (await redis.get(LEASE) or b"").decode()
    for hub in hubs:
        if hub.process is not None and f":{hub.process.pid}:" in holder:
            return hub
    raise AssertionError(f"no live process of this test holds the fan-out lease: {holder!r}")


@dataclass(frozen=True)
class Frozen:
    """A fan-out lease holder stopped with SIGSTOP, with a batch of the log read and not yet
    acknowledged, and what the feeds held meanwhile."""

    hub: HubProcess
    lengths: list[int]
    pending: int

    @property
    def held(self) -> int:
        return sum(self.lengths)


def stopped_in_python(pid: int) -> bool:
    """Whether a stopped process was running its own code rather than waiting in a system call
    (such as the event loop's epoll_wait for a Redis reply). Linux: /proc/<pid>/syscall."""
    return Path(f"/proc/{pid}/syscall").read_text().startswith("-1 ")


def is_stopped(pid: int) -> bool:
    """Whether the process has stopped (state T in /proc/<pid>/stat): a SIGSTOP lands a moment
    after kill() returns, and /proc/<pid>/syscall says where only once it has."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] in "Tt"


async def stop_in_python(pid: int, tries: int = 100) -> bool:
    """SIGSTOP the process at a moment it runs its own code (stopped_in_python). A stop that
    finds it in a system call is undone at once and aimed again a moment later, up to `tries`
    times: the process spends most of a batch waiting for Redis, and one aim per batch missed
    every batch in one run of 18."""
    loop = asyncio.get_running_loop()
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        deadline = loop.time() + 2.0
        while not is_stopped(pid):
            assert loop.time() < deadline, "the process did not stop"
            await asyncio.sleep(0.0002)
        if stopped_in_python(pid):
            return True
        os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(random.uniform(0.0005, 0.003))
    return False


async def freeze_mid_fanout(
    redis: Redis,
    hubs: list[HubProcess],
    subs: list[Sub],
    total: int,
    computing: bool = False,
    within: float = 30.0,
) -> Frozen:
    """Let go of the fan-out lease, then SIGSTOP whichever process takes it, once the feeds hold
    some of their `total` events (a third, unless `computing`) and a batch is read but not
    acknowledged; with `computing`, only while the process works on the batch in Python, not
    while it waits for Redis. A stop that misses is undone (SIGCONT) and aimed again."""
    assert await redis.get(LEASE) == BLOCKER.encode()
    await redis.delete(LEASE)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    least = 1 if computing else total // 3
    missed: list[tuple[int, int]] = []  # (feeds' total, pending) at each stop undone
    while True:
        assert loop.time() < deadline, f"no stop mid-batch; missed at {missed}"
        lengths, pending = await fanout_state(redis, subs)
        if sum(lengths) < least or pending == 0:
            await asyncio.sleep(0.001)
            continue
        assert sum(lengths) < total, "the fan-out finished before it could be stopped"
        holder = await lease_holder(redis, hubs)
        assert holder.process is not None
        if computing:
            if not await stop_in_python(holder.process.pid):
                missed.append((sum(lengths), -1))  # -1: never caught in its own code
                continue
        else:
            os.kill(holder.process.pid, signal.SIGSTOP)
        lengths, pending = await settled_state(redis, subs)
        if pending > 0:
            return Frozen(holder, lengths, pending)
        os.kill(holder.process.pid, signal.SIGCONT)
        missed.append((sum(lengths), pending))


async def kill(redis: Redis, subs: list[Sub], frozen: Frozen) -> None:
    """SIGKILL the frozen holder; its unacknowledged batch and the feeds stay as they were."""
    assert frozen.hub.process is not None
    frozen.hub.process.kill()
    await asyncio.to_thread(frozen.hub.process.wait)
    assert await fanout_state(redis, subs) == (frozen.lengths, frozen.pending)


async def wait_fanned_out(
    redis: Redis, subs: list[Sub], counts: list[int], within: float = 30.0
) -> None:
    """Until the fan-out group has read and acknowledged the whole log and every feed holds at
    least its expected count (more would be a duplicate, for the caller to find)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        lengths = await feed_lengths(redis, subs)
        group = next(
            g for g in await redis.xinfo_groups(KEYS.events) if g["name"] == ONE_GROUP.encode()
        )
        newest = (await redis.xrevrange(KEYS.events, count=1))[0][0]
        done = group["pending"] == 0 and group["last-delivered-id"] == newest
        if done and all(n >= c for n, c in zip(lengths, counts, strict=True)):
            return
        assert loop.time() < deadline, (
            f"feeds hold {lengths}, expected {counts}; group {group}; newest {newest}"
        )
        await asyncio.sleep(0.05)


async def check_feeds(
    redis: Redis, client: Client, hub: HubProcess, subs: list[Sub], log: list[tuple[str, Report]]
) -> None:
    """Each feed, in Redis and by pull, is exactly the expected events in log order."""
    cluster_of = {r.hub_id: r.cluster_id for _, r in log}
    for sub in subs:
        expected = expected_feed(sub, log)
        assert expected, f"subscription {sub.owner} {sub.filter} expects nothing: a weak scenario"
        stored = await redis.xrange(KEYS.feed(sub.id))
        got = [(i.decode(), f[b"type"].decode(), f[b"hub_id"].decode()) for i, f in stored]
        assert len(got) == len({i for i, _, _ in got}), "an event twice in one feed"
        assert got == expected, (sub.owner, sub.filter, first_difference(got, expected))
        assert all(
            f[b"cluster_id"].decode() == cluster_of[f[b"hub_id"].decode()] for _, f in stored
        )
        assert await client.feed(hub, sub) == expected, (sub.owner, sub.filter)


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_sigkill_during_fanout_loses_and_doubles_nothing(
    hubs: list[HubProcess], redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """A holder SIGKILLed mid-fan-out: the successor completes every feed, no loss, no double."""
    (first,) = await start_held_back(redis, hubs, redis_url, tmp_path, 1)
    scenario = Scenario(random.Random(20261121))
    async with aiohttp.ClientSession() as session:
        client = Client(session)
        subs = await client.setup(first)
        for n in range(10):
            batch = scenario.batch(PUBLISHERS[n % len(PUBLISHERS)], corroborations=3 if n else 0)
            await client.post_batch(first, batch)
        reports = scenario.reports
        assert len(reports) == 500
        assert sum(await feed_lengths(redis, subs)) == 0  # held back by the test's lease
        counts = expected_counts(subs, reports)

        frozen = await freeze_mid_fanout(redis, [first], subs, sum(counts))
        assert frozen.hub is first and frozen.pending > 0
        assert 0 < frozen.held < sum(counts)
        await kill(redis, subs, frozen)
        second = await start_hub(hubs, redis_url, tmp_path)
        await wait_fanned_out(redis, subs, counts)

        log = await read_log(redis, reports)
        assert [r.hub_id for _, r in log] == [r.hub_id for r in reports]  # posted one by one
        check_clusters(reports)
        await check_feeds(redis, client, second, subs, log)
        assert "fanout_" not in second.output()  # no Redis error, no missing alert


@pytest.mark.timeout(180)
async def test_two_hub_processes_fan_out_each_event_once(
    hubs: list[HubProcess], redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """Two processes, the fan-out holder SIGKILLed mid-way: the other fans each event out once."""
    both = await start_held_back(redis, hubs, redis_url, tmp_path, 2)
    scenario = Scenario(random.Random(20261122))
    async with aiohttp.ClientSession() as session:
        client = Client(session)
        subs = await client.setup(both[0])
        # New content from every publisher through both processes at once, then corroborations
        # of it (after, so that which report of an incident came first is known).
        fresh = [scenario.batch(PUBLISHERS[n % len(PUBLISHERS)]) for n in range(6)]
        await asyncio.gather(*(client.post_batch(both[n % 2], b) for n, b in enumerate(fresh)))
        again = [scenario.batch(PUBLISHERS[n], corroborations=5) for n in range(2)]
        await asyncio.gather(*(client.post_batch(both[n % 2], b) for n, b in enumerate(again)))
        counts = expected_counts(subs, scenario.reports)

        frozen = await freeze_mid_fanout(redis, both, subs, sum(counts))
        assert frozen.pending > 0 and 0 < frozen.held < sum(counts)
        await kill(redis, subs, frozen)
        survivor = next(h for h in both if h is not frozen.hub)
        # More alerts, through the survivor, while the dead holder's lease runs out.
        for n in range(2):
            await client.post_batch(survivor, scenario.batch(PUBLISHERS[n + 2], corroborations=5))
        reports = scenario.reports
        assert len(reports) == 500
        await wait_fanned_out(redis, subs, expected_counts(subs, reports))

        assert await lease_holder(redis, both) is survivor
        log = await read_log(redis, reports)
        check_clusters(reports)
        await check_feeds(redis, client, survivor, subs, log)
        assert "fanout_" not in survivor.output()


async def xack_calls(redis: Redis) -> int:
    return (await redis.info("commandstats")).get("cmdstat_xack", {}).get("calls", 0)


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs Linux /proc")
@pytest.mark.timeout(180)
async def test_stalled_fanout_holder_resuming_late_adds_nothing_twice(
    hubs: list[HubProcess], redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """A holder stalled mid-batch past its lease, resumed late: its appends add nothing twice."""
    both = await start_held_back(redis, hubs, redis_url, tmp_path, 2)
    scenario = Scenario(random.Random(20261123))
    async with aiohttp.ClientSession() as session:
        client = Client(session)
        subs = await client.setup(both[0])
        for n in range(10):
            batch = scenario.batch(PUBLISHERS[n % len(PUBLISHERS)], corroborations=3 if n else 0)
            await client.post_batch(both[n % 2], batch)
        counts = expected_counts(subs, scenario.reports)

        # Stopped in Python, not in a wait for Redis: resumed after the lease's 5 s, a wait
        # for Redis would time out (socket timeout 5 s) and drop the batch, safely but without
        # the late appends this test is about.
        frozen = await freeze_mid_fanout(redis, both, subs, sum(counts), computing=True)
        assert frozen.pending > 0 and 0 < frozen.held < sum(counts)
        other = next(h for h in both if h is not frozen.hub)
        await wait_fanned_out(redis, subs, counts)  # the other takes over once the lease lapses
        assert await lease_holder(redis, both) is other

        acks = await xack_calls(redis)
        assert frozen.hub.process is not None
        os.kill(frozen.hub.process.pid, signal.SIGCONT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while await xack_calls(redis) == acks:  # its stale batch, appended and acknowledged
            assert loop.time() < deadline, f"no late batch; log: {frozen.hub.output()[-2000:]}"
            await asyncio.sleep(0.02)
        assert await feed_lengths(redis, subs) == counts

        # Both processes go on posting, and the fan-out goes on, exactly once.
        for n in range(2):
            await client.post_batch(both[n], scenario.batch(PUBLISHERS[n], corroborations=3))
        reports = scenario.reports
        await wait_fanned_out(redis, subs, expected_counts(subs, reports))
        log = await read_log(redis, reports)
        check_clusters(reports)
        await check_feeds(redis, client, frozen.hub, subs, log)
        # Its late appends were refused as duplicates, quietly: no Redis error.
        assert "fanout_" not in frozen.hub.output() + other.output()

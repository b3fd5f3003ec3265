"""`serve --workers N` and `--role`, as real processes: two workers answer on one port; a
SIGKILLed worker is replaced by gunicorn's arbiter and no alert answered 2xx is lost; SIGTERM lets
a request in flight finish before every worker exits; an `api` process alone fans nothing out and
delivers no webhook, and a `delivery` process beside it does, while serving no API route."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from hub.store.keys import Keys
from tests.conftest import OPERATOR_TOKEN, Api, unique_threat
from tests.fanout_groups import DEFAULT_SHARDS, groups_of
from tests.faults.cluster import HUB_ENV, wait_for
from tests.hubproc import HubProcess
from tests.receivers import Receiver
from tests.sse_client import SseReader

PID_RE = re.compile(r'alerthub_process_info\{pid="(\d+)",role="(\w+)"\}')
POSTERS, POSTS_EACH = 4, 60
STREAMS = 4
TIMEOUT = aiohttp.ClientTimeout(total=10)


def worker_pids(arbiter: HubProcess) -> set[int]:
    """The live hub workers of a `serve --workers N` process (its children, from /proc)."""
    assert arbiter.process is not None
    pid = arbiter.process.pid
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return set()
    workers = set()
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"hub\0serve" in cmdline and state != "Z":
            workers.add(int(child))
    return workers


async def answering_pid(session: aiohttp.ClientSession, base_url: str) -> tuple[int, str]:
    """(pid, role) of the process that answered one /metrics scrape, on a new connection."""
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Connection": "close"}
    async with session.get(f"{base_url}/metrics", headers=headers, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        match = PID_RE.search(await resp.text())
    assert match is not None
    return int(match[1]), match[2]


async def pids_answering(
    session: aiohttp.ClientSession, base_url: str, wanted: set[int], within: float = 30.0
) -> None:
    """Until each pid of `wanted` has answered a scrape."""
    seen: set[int] = set()

    async def all_seen() -> bool:
        pids = await asyncio.gather(*(answering_pid(session, base_url) for _ in range(4)))
        seen.update(pid for pid, _ in pids)
        return wanted <= seen

    await wait_for(all_seen, within, f"answers from each of {wanted} (seen {seen})")


async def holds(condition: bool) -> bool:
    """`condition`, as the awaitable that wait_for polls."""
    return condition


async def two_workers(hub: HubProcess) -> None:
    await wait_for(lambda: holds(len(worker_pids(hub)) == 2), 30, "two workers")


async def start(
    hubs: list[HubProcess], tmp_path: Path, env: dict[str, str], *args: str
) -> HubProcess:
    cwd = tmp_path / f"hub{len(hubs)}"
    cwd.mkdir()
    hub = HubProcess(env={**HUB_ENV, **env}, cwd=cwd, args=args)
    hubs.append(hub)
    await asyncio.to_thread(hub.start)
    return hub


async def test_two_workers_answer_on_one_port_from_two_pids_on_one_embedded_redis(
    tmp_path: Path, hubs: list[HubProcess], session: aiohttp.ClientSession
) -> None:
    """--workers 2 on the embedded Redis: both workers answer on the one port, one Redis serves
    them, and SIGTERM stops the workers, the arbiter and that Redis (exit 0)."""
    data = tmp_path / "data"
    hub = await start(hubs, tmp_path, {"ALERTHUB_DATA_DIR": str(data)}, "--workers", "2")
    await two_workers(hub)
    await pids_answering(session, hub.base_url, worker_pids(hub))
    assert hub.output().count("alerthub: embedded Redis at") == 1
    assert "2 workers" in hub.output()
    assert await asyncio.to_thread(hub.stop) == 0
    assert not (data / "redis.url").exists()  # the arbiter stopped the Redis it started


async def test_a_killed_worker_is_replaced_and_no_accepted_alert_is_lost(
    redis_url: str, tmp_path: Path, hubs: list[HubProcess], session: aiohttp.ClientSession
) -> None:
    """A worker SIGKILLed under posts: the arbiter starts another, which answers; posters that
    meet the dead one retry the same body (idempotent), and every alert answered 2xx is stored."""
    hub = await start(hubs, tmp_path, {"ALERTHUB_REDIS_URL": redis_url}, "--workers", "2")
    await two_workers(hub)
    api = Api(aiohttp.ClientSession(base_url=hub.base_url, timeout=TIMEOUT))
    try:
        await api.add_node("rs-cert")
        stored: dict[str, str] = {}
        retried = 0
        killed = asyncio.Event()

        async def poster(n: int) -> None:
            nonlocal retried
            for i in range(POSTS_EACH):
                alert = unique_threat(f"w{n}-{i}")
                while True:
                    try:
                        status, body = await api.post("rs-cert", alert)
                    except (aiohttp.ClientError, TimeoutError):
                        retried += 1
                        continue  # a reset or refused connection: the same body again
                    if status != 503:
                        break
                assert status in (200, 201), body
                stored[alert["id"]] = body["hub_id"]
                if n == 0 and i == 20:
                    killed.set()

        posting = asyncio.gather(*(poster(n) for n in range(POSTERS)))
        await killed.wait()
        victim = min(worker_pids(hub))
        os.kill(victim, signal.SIGKILL)
        await posting
        await wait_for(
            lambda: holds(len(worker_pids(hub) - {victim}) == 2), 30, "a replacement worker"
        )
        await pids_answering(session, hub.base_url, worker_pids(hub))
        assert len(stored) == POSTERS * POSTS_EACH
        for alert_id, hub_id in stored.items():
            status, body = await api.get("rs-cert", f"/v1/alerts/{hub_id}")
            assert status == 200 and body["id"] == alert_id, body
        print(f"posts retried after the kill: {retried}")
    finally:
        await api.client.close()


async def test_sigterm_ends_streams_cleanly_and_every_worker_exits_soon(
    redis_url: str, tmp_path: Path, hubs: list[HubProcess], session: aiohttp.ClientSession
) -> None:
    """SIGTERM to the arbiter under posts with SSE streams open: each stream ends cleanly (the
    chunked body closed, not cut), no post gets a 5xx, each post answered 2xx is stored, and the
    arbiter and both workers exit 0 well before the 60 s grace (streams do not hold the drain)."""
    hub = await start(hubs, tmp_path, {"ALERTHUB_REDIS_URL": redis_url}, "--workers", "2")
    await two_workers(hub)
    workers = worker_pids(hub)
    api = Api(aiohttp.ClientSession(base_url=hub.base_url, timeout=TIMEOUT))
    try:
        await api.add_node("rs-cert")
        sub = await api.subscribe("rs-cert")
        streams = [
            await session.get(
                f"{hub.base_url}/v1/subscriptions/{sub['id']}/events", headers=api.auth("rs-cert")
            )
            for _ in range(STREAMS)
        ]
        for stream in streams:
            assert stream.status == 200
            await SseReader(stream).next_frame()
        stored: dict[str, str] = {}
        statuses: list[int] = []
        signalled = asyncio.Event()

        async def poster(n: int) -> None:
            for i in range(10_000):
                alert = unique_threat(f"t{n}-{i}")
                try:
                    status, body = await api.post("rs-cert", alert)
                except (aiohttp.ClientError, TimeoutError):
                    if signalled.is_set():
                        return  # refused or cut once the workers stopped listening
                    raise
                statuses.append(status)
                if status in (200, 201):
                    stored[alert["id"]] = body["hub_id"]

        posting = asyncio.gather(*(poster(n) for n in range(2)))
        await wait_for(lambda: holds(len(stored) >= 20), 30, "20 posts stored")
        assert hub.process is not None
        started = time.monotonic()
        hub.process.send_signal(signal.SIGTERM)
        signalled.set()
        for stream in streams:
            await asyncio.wait_for(_until_clean_end(SseReader(stream)), 20)
        await posting
        code = await asyncio.to_thread(hub.process.wait, 60)
        assert code == 0 and time.monotonic() - started < 30
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # noqa: ASYNC240
        assert not [s for s in statuses if s >= 500], statuses
    finally:
        await api.client.close()
    client = Redis.from_url(redis_url)
    try:
        keys = Keys()
        for hub_id in stored.values():
            assert await client.exists(keys.alert(hub_id)), hub_id
    finally:
        await client.aclose()


async def _until_clean_end(reader: SseReader) -> None:
    """Read frames until the stream ends; a stream cut mid-body raises ClientPayloadError."""
    with contextlib.suppress(EOFError):
        while True:
            await reader.next_frame(within=20)


async def test_api_alone_delivers_nothing_and_a_delivery_process_beside_it_does(
    redis_url: str,
    tmp_path: Path,
    hubs: list[HubProcess],
    session: aiohttp.ClientSession,
    receivers: list[Receiver],
) -> None:
    """An `api` process takes the post and the subscription but fans nothing out (no consumer
    group on the log, an empty feed, nothing sent to the webhook); a `delivery` process started
    beside it fans out and delivers the webhook, and answers 404 to the API."""
    receiver = await Receiver().start()
    receivers.append(receiver)
    env = {"ALERTHUB_REDIS_URL": redis_url}
    api_hub = await start(hubs, tmp_path, env, "--role", "api")
    api = Api(aiohttp.ClientSession(base_url=api_hub.base_url, timeout=TIMEOUT))
    redis = Redis.from_url(redis_url)
    try:
        async with session.get(f"{api_hub.base_url}/readyz") as resp:
            assert await resp.json() == {
                "status": "ready",
                "redis": "ok",
                "fanout": "none",
                "role": "api",
            }
        await api.add_node("rs-cert")
        hook = await api.subscribe("rs-cert", {"type": "webhook", "url": receiver.url})
        status, posted = await api.post("rs-cert", unique_threat("split-1"))
        assert status == 201, posted
        keys = Keys()
        assert await redis.xinfo_groups(keys.events) == []  # no process ever fanned out
        assert await api.feed("rs-cert", hook["id"]) == []
        assert receiver.deliveries == [] and receiver.verifications == []

        delivery = await start(hubs, tmp_path, {**env, "ALERTHUB_ROLE": "delivery"})
        await receiver.wait_for(lambda r: delivered(r, posted["hub_id"]), 30)
        groups = await redis.xinfo_groups(keys.events)
        assert {g["name"].decode() for g in groups} == groups_of(DEFAULT_SHARDS)
        await _delivery_serves_only_probes_and_metrics(session, delivery.base_url)
    finally:
        await api.client.close()
        await redis.aclose()


def delivered(receiver: Receiver, hub_id: str) -> bool:
    return any(d.event.get("hub_id") == hub_id for d in receiver.deliveries)


async def _delivery_serves_only_probes_and_metrics(
    session: aiohttp.ClientSession, base_url: str
) -> None:
    auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    async with session.get(f"{base_url}/readyz") as resp:
        assert resp.status == 200 and (await resp.json())["role"] == "delivery"
    assert (await answering_pid(session, base_url))[1] == "delivery"
    for method, path in (("GET", "/v1/alerts"), ("POST", "/v1/alerts"), ("GET", "/status")):
        async with session.request(method, f"{base_url}{path}", headers=auth) as resp:
            body: Any = await resp.json()
            assert resp.status == 404 and body["error"] == "not_found", (path, body)
    async with session.get(f"{base_url}/healthz") as resp:
        assert resp.status == 200

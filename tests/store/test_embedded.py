"""The embedded Redis: real redis-server, data survives a restart, one owner per data folder."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from hub.store.embedded import (
    EmbeddedRedis,
    EmbeddedRedisError,
    answers,
    shared_url,
    start_redis_server,
)
from tests.hubproc import wait_until


def test_data_survives_a_restart(tmp_path: Path) -> None:
    """A key written before a clean stop is there after the next start on the same folder."""
    first = EmbeddedRedis(tmp_path / "data")
    url = first.start()
    client = redis.Redis.from_url(url)
    assert client.config_get("appendfsync")["appendfsync"] == "everysec"
    client.set("alerthub:probe", "kept")
    client.close()
    first.close()
    assert not answers(url)
    # One file up to Redis 6.2, a folder of them (multi-part AOF) from 7.0.
    data = tmp_path / "data"
    assert (data / "appendonly.aof").exists() or any((data / "appendonlydir").iterdir())

    second = EmbeddedRedis(tmp_path / "data", appendfsync="always")
    try:
        client = redis.Redis.from_url(second.start())
        assert client.get("alerthub:probe") == b"kept"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "always"  # ALERTHUB_APPENDFSYNC
        client.close()
    finally:
        second.close()


def test_second_owner_is_refused_with_the_url_to_share(tmp_path: Path) -> None:
    """A second hub on the same data folder is refused with a message naming the shared URL."""
    owner = EmbeddedRedis(tmp_path / "data")
    url = owner.start()
    try:
        with pytest.raises(EmbeddedRedisError, match="ALERTHUB_REDIS_URL=" + url):
            EmbeddedRedis(tmp_path / "data").start()
        assert shared_url((tmp_path / "data").resolve()) == url
        assert answers(url)
    finally:
        owner.close()


def test_server_of_a_killed_owner_is_adopted_not_doubled(tmp_path: Path) -> None:
    """When the owning process dies, the next owner adopts its still-running server."""
    data = tmp_path / "data"
    code = (
        "import sys, time; from pathlib import Path; from hub.store.embedded import EmbeddedRedis; "
        f"print(EmbeddedRedis(Path({str(data)!r})).start(), flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert answers(url)
        client = redis.Redis.from_url(url)
        client.set("alerthub:probe", "before-kill")
        client.close()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert answers(url), "redis-server outlives its owner"
    heir = EmbeddedRedis(data, appendfsync="always")
    try:
        assert heir.start() == url
        client = redis.Redis.from_url(url)
        assert client.get("alerthub:probe") == b"before-kill"
        assert client.config_get("appendfsync")["appendfsync"] == "always"  # the heir's policy
        client.close()
    finally:
        heir.close()
    wait_until(lambda: not answers(url, 0.2), 15, what="adopted server to stop")


# A server that never answers the hub's PING (NOAUTH) stands in for one still LOADING a big AOF.
NEVER_ANSWERS = ("requirepass not-the-hubs-password",)


def child_pids() -> set[int]:
    """This process's children, running or zombie (a killed child never waited for is one)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry.name))
    return found


def test_ctrl_c_while_redis_starts_stops_it(tmp_path: Path) -> None:
    """Ctrl-C while the server is not answering yet stops it: in its own session it would get
    no SIGINT, and with no redis.url written the next start would run a second one on its AOF."""
    data = tmp_path / "data"
    before = child_pids()
    started: list[int] = []

    def interrupt_once_started() -> None:
        def server_up() -> bool:
            started[:] = child_pids() - before
            return bool(started) and (data / "redis.pid").exists()

        wait_until(server_up, 15, what="redis-server to start")
        _thread.interrupt_main()

    thread = threading.Thread(target=interrupt_once_started, daemon=True)
    thread.start()
    with pytest.raises(KeyboardInterrupt):
        start_redis_server(data, timeout=30, extra_config=NEVER_ANSWERS)
    thread.join(5)
    assert started, "redis-server was never seen running"
    assert child_pids() == before, "redis-server left running (or unreaped) after Ctrl-C"
    assert not Path(f"/proc/{started[0]}").exists()


def test_start_timeout_stops_and_reaps_redis(tmp_path: Path) -> None:
    """A server that does not answer in time is stopped and waited for, not left as a zombie."""
    before = child_pids()
    with pytest.raises(EmbeddedRedisError, match=r"did not answer within 0\.5 s"):
        start_redis_server(tmp_path / "data", timeout=0.5, extra_config=NEVER_ANSWERS)
    assert child_pids() == before

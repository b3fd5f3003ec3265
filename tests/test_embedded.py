"""The embedded Redis: real redis-server, data survives a restart, one owner per data folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from hub.embedded import EmbeddedRedis, EmbeddedRedisError, answers, shared_url
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
    assert (tmp_path / "data" / "appendonly.aof").exists()

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
        "import sys, time; from pathlib import Path; from hub.embedded import EmbeddedRedis; "
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

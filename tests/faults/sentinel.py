"""A Redis Sentinel deployment of the test's own on loopback: one primary, its replicas and
three sentinels, all real `redis-server` processes (the binary the suite uses: tests/conftest.py),
each in a folder of its own. The primary can be SIGKILLed; the sentinels then promote a replica."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from hub.store import embedded
from hub.store.embedded import RedisServer, free_port, start_redis_server, stop_process

SERVICE = "alerthub"
# Sentinel's view of "down": a primary that does not answer for this long is subjectively down,
# and once a quorum agrees, a failover starts. Production values are seconds (5-30 s); a test
# wants the failover itself, quickly.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
# Every data node: a primary starts a replica's full sync at once. (Redis 7 syncs disklessly by
# default and first waits 5 s for more replicas to share the transfer.)
NODE_CONFIG = ("repl-diskless-sync-delay 0",)


def sentinel_config(
    port: int,
    folder: Path,
    primary_port: int,
    quorum: int,
    password: str | None = None,
    sentinel_password: str | None = None,
) -> str:
    auth = [f"sentinel auth-pass {SERVICE} {password}"] if password else []
    # A sentinel's requirepass is also what it presents to its peers.
    auth += [f"requirepass {sentinel_password}"] if sentinel_password else []
    return (
        "\n".join(
            [
                *auth,
                f"port {port}",
                "bind 127.0.0.1",
                "daemonize no",
                f"dir {folder}",
                f"logfile {folder / 'sentinel.log'}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} {quorum}",
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {SERVICE} 1",
            ]
        )
        + "\n"
    )


def replica_settled(port: int, password: str | None = None) -> bool:
    """The replica on `port` is linked to its primary and done with the append-only file
    rewrite that follows a full sync (a SIGTERM during it went unheeded, costing the stop
    its whole timeout)."""
    client = redis.Redis(
        port=port, password=password, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    try:
        replication = client.info("replication")
        persistence = client.info("persistence")
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()
    return (
        replication.get("master_link_status") == "up"
        and not persistence.get("aof_rewrite_in_progress")
        and not persistence.get("aof_rewrite_scheduled")
    )


def replicas_acknowledge(port: int, replicas: int, password: str | None = None) -> bool:
    """A probe write to the primary on `port` is acknowledged by `replicas` replicas within
    0.2 s. ("online" is not enough: Redis 7 streams to a replica fresh from a diskless sync only
    after its first ACK, up to a second later.)"""

    def probe(client: redis.Redis) -> bool:
        client.set("test:replication-probe", time.time())
        return int(client.execute_command("WAIT", replicas, 200)) >= replicas

    return bool(_ask(port, probe, password))


def wait_until(check, within: float, what: str, every: float = 0.02) -> float:
    """Poll `check()` until true; the seconds it took. AssertionError after `within`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


def _ask(port: int, ask: Callable[[redis.Redis], Any], password: str | None = None) -> Any:
    """`ask(client)` of the server on `port`; None when it does not answer."""
    client = redis.Redis(
        port=port, password=password, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    try:
        return ask(client)
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


@dataclass
class SentinelSet:
    """`replicas` replicas of one primary, watched by `sentinels` sentinels (quorum: a
    majority). `nodes` are the data servers by port; `primary_port()` asks the sentinels where
    the primary is now."""

    root: Path
    replicas: int = 2
    sentinels: int = 3
    # The data nodes' requirepass (and masterauth), and the sentinels' own.
    password: str | None = None
    sentinel_password: str | None = None
    nodes: dict[int, RedisServer] = field(default_factory=dict)
    sentinel_ports: list[int] = field(default_factory=list)
    _sentinel_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    first_primary: int = 0

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        userinfo = f":{self.password}@" if self.password else ""
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"redis+sentinel://{userinfo}{hosts}/{SERVICE}/0{query}"

    def start(self) -> SentinelSet:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        # masterauth from the start; requirepass once each answers (start_redis_server knows
        # no password), the primary's before any replica connects.
        node_config = (*NODE_CONFIG, *([f"masterauth {self.password}"] if self.password else []))
        primary = start_redis_server(
            self.root / "primary", port=free_port(), extra_config=node_config
        )
        self.first_primary = _port(primary)
        self.nodes[self.first_primary] = primary
        self._require_password(self.first_primary)
        for n in range(self.replicas):
            replica = start_redis_server(
                self.root / f"replica-{n}",
                port=free_port(),
                extra_config=(*node_config, f"replicaof 127.0.0.1 {self.first_primary}"),
            )
            self.nodes[_port(replica)] = replica
            self._require_password(_port(replica))
        wait_until(
            lambda: all(
                replica_settled(port, self.password)
                for port in self.nodes
                if port != self.first_primary
            ),
            20.0,
            "the replicas to sync",
        )
        wait_until(
            lambda: replicas_acknowledge(self.first_primary, self.replicas, self.password),
            20.0,
            "the replicas to acknowledge the primary's writes",
        )
        quorum = self.sentinels // 2 + 1
        for n in range(self.sentinels):
            folder = self.root / f"sentinel-{n}"
            folder.mkdir(parents=True)
            port = free_port()
            conf = folder / "sentinel.conf"
            conf.write_text(
                sentinel_config(
                    port,
                    folder,
                    self.first_primary,
                    quorum,
                    self.password,
                    self.sentinel_password,
                )
            )
            with (folder / "stderr").open("ab") as stderr:
                process = subprocess.Popen(
                    [embedded.find_redis_server(), str(conf), "--sentinel"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,
                )
            self._sentinel_processes.append(process)
            self.sentinel_ports.append(port)
        # Ready once every sentinel knows the replicas and its peers: before that, a failover
        # could find no quorum or no replica to promote.
        wait_until(self._sentinels_ready, 30.0, "the sentinels to see each other and the replicas")

    def _require_password(self, port: int) -> None:
        if self.password:
            _ask(port, lambda c: c.config_set("requirepass", self.password))

    def _sentinels_ready(self) -> bool:
        for port in self.sentinel_ports:
            state = _ask(port, lambda c: c.sentinel_master(SERVICE), self.sentinel_password)
            if not isinstance(state, dict):
                return False
            if int(state.get("num-slaves", 0)) < self.replicas:
                return False
            if int(state.get("num-other-sentinels", 0)) < self.sentinels - 1:
                return False
        return True

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers says it."""
        for port in self.sentinel_ports:
            address = _ask(
                port, lambda c: c.sentinel_get_master_addr_by_name(SERVICE), self.sentinel_password
            )
            if address:
                return int(address[1])
        return None

    def role(self, port: int) -> bytes | None:
        reply = _ask(port, lambda c: c.execute_command("ROLE"), self.password)
        return reply[0] if isinstance(reply, list | tuple) and reply else None

    def connected_replicas(self, port: int) -> int:
        info = redis.Redis(port=port, password=self.password, socket_timeout=1.0)
        try:
            return int(info.info("replication").get("connected_slaves", 0))
        except (redis.RedisError, OSError):
            return -1
        finally:
            info.close()

    def kill_primary(self) -> int:
        """SIGKILL the current primary; its port."""
        port = self.primary_port()
        assert port is not None, "no sentinel names a primary"
        server = self.nodes.pop(port)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        return port

    def promoted(self, old: int) -> bool:
        """The sentinels name another primary than `old`, and it says it is one."""
        port = self.primary_port()
        return port is not None and port != old and self.role(port) == b"master"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, socket_timeout=5.0)

    def stop(self) -> None:
        for process in self._sentinel_processes:
            stop_process(process, 5.0)
        for server in self.nodes.values():
            server.stop(5.0)
        self.nodes.clear()


def _port(server: RedisServer) -> int:
    return int(server.url.rsplit(":", 1)[1].split("/")[0])

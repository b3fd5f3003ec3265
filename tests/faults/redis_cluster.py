"""A Redis Cluster of the test's own on loopback: `masters` masters with `replicas_each` replicas
each, all real `redis-server` processes (the binary the suite uses: tests/conftest.py) in folders
of their own, formed from Python with CLUSTER ADDSLOTS / MEET / REPLICATE (Redis 6.2's commands;
no redis-cli needed). A master can be SIGKILLed; its replica then promotes itself once the other
masters agree it is down (cluster-node-timeout)."""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from hub.store.connect import online
from hub.store.embedded import RedisServer, free_port, start_redis_server
from tests.faults.sentinel import wait_until

SLOTS = 16384
# How long a node may not answer before the others call it failed and its replica takes over.
# Production values are 5-15 s; a test wants the failover itself, quickly.
NODE_TIMEOUT_MS = 1000
NODE_CONFIG = (
    "cluster-enabled yes",
    "cluster-config-file nodes.conf",
    f"cluster-node-timeout {NODE_TIMEOUT_MS}",
    "repl-diskless-sync-delay 0",
)


def cluster_port() -> int:
    """A free loopback port that leaves room for its cluster bus port (port + 10000, which must
    be free too and below 65536)."""
    for _ in range(200):
        port = free_port()
        if port <= 55535 and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ask(port: int, command: tuple[Any, ...], password: str | None = None) -> Any:
    """The reply of `command` from the node on `port`; None when it does not answer."""
    client = redis.Redis(
        port=port, password=password, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    try:
        return client.execute_command(*command)
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def cluster_info(port: int, password: str | None = None) -> dict[str, str]:
    raw = ask(port, ("CLUSTER", "INFO"), password)
    if not isinstance(raw, bytes | str):
        return {}
    text = raw.decode() if isinstance(raw, bytes) else raw
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


@dataclass
class ClusterSet:
    """`masters` masters and their replicas, the nodes by port; `masters_by_slot()` says who
    serves what now."""

    root: Path
    masters: int = 3
    # Replicas of each master, the first count for the master that serves `favoured`'s slot:
    # with ALERTHUB_MIN_REPLICAS_ACK=1 the `{core}` master needs two, so that once one of them
    # is promoted the other can acknowledge its writes (as with Sentinel, docs/redis-ha.md).
    replicas: tuple[int, ...] = (1, 1, 1)
    favoured: str = "{core}"
    # The first slot of each master after the first (even shares when empty).
    starts: tuple[int, ...] = ()
    password: str | None = None
    nodes: dict[int, RedisServer] = field(default_factory=dict)
    first_masters: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in sorted(self.nodes))
        userinfo = f":{self.password}@" if self.password else ""
        return f"redis+cluster://{userinfo}{hosts}/"

    def start(self) -> ClusterSet:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        config = (*NODE_CONFIG, *([f"masterauth {self.password}"] if self.password else []))
        count = self.masters + sum(self.replicas)
        for n in range(count):
            port = cluster_port()
            self.nodes[port] = start_redis_server(
                self.root / f"node-{n}", port=port, extra_config=config
            )
            if self.password:
                # start_redis_server waits for an answer without a password: requirepass after.
                ask(port, ("CONFIG", "SET", "requirepass", self.password))
        ports = list(self.nodes)
        self.first_masters = ports[: self.masters]
        per = SLOTS // self.masters
        starts = list(self.starts) if self.starts else [i * per for i in range(1, self.masters)]
        edges = [0, *starts, SLOTS]
        for i, port in enumerate(self.first_masters):
            self._do(port, ("CLUSTER", "ADDSLOTS", *range(edges[i], edges[i + 1])))
        for port in ports[1:]:
            self._do(port, ("CLUSTER", "MEET", "127.0.0.1", ports[0]))
        wait_until(
            lambda: all(
                int(cluster_info(p, self.password).get("cluster_known_nodes", 0)) == count
                for p in ports
            ),
            30.0,
            "every node to know every other",
        )
        slot = int(self._do(ports[0], ("CLUSTER", "KEYSLOT", self.favoured)))
        favoured = self.first_masters[sum(slot >= start for start in edges[1:-1])]
        order = [favoured, *(p for p in self.first_masters if p != favoured)]
        replicas = iter(ports[self.masters :])
        for master, how_many in zip(order, self.replicas, strict=True):
            for _ in range(how_many):
                self._do(next(replicas), ("CLUSTER", "REPLICATE", self.node_id(master)))
        wait_until(self._formed, 60.0, "the cluster to be formed (state ok, replicas linked)")

    def _do(self, port: int, command: tuple[Any, ...]) -> Any:
        client = redis.Redis(port=port, password=self.password, socket_timeout=5.0)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def node_id(self, port: int) -> str:
        reply = self._do(port, ("CLUSTER", "MYID"))
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def _formed(self) -> bool:
        for port in self.nodes:
            if cluster_info(port, self.password).get("cluster_state") != "ok":
                return False
        for port in list(self.nodes)[self.masters :]:
            info = ask(port, ("INFO", "replication"), self.password)
            if not isinstance(info, dict) or info.get("master_link_status") != "up":
                return False
        return True

    def ok_everywhere(self) -> bool:
        """Every live node says cluster_state:ok."""
        return all(
            cluster_info(port, self.password).get("cluster_state") == "ok" for port in self.nodes
        )

    def masters_by_slot(self) -> dict[int, int]:
        """Slot -> port of the master serving it, as the first node that answers says it."""
        for port in self.nodes:
            reply = ask(port, ("CLUSTER", "SLOTS"), self.password)
            if not reply:
                continue
            owners: dict[int, int] = {}
            for start, end, master, *_ in reply:
                for slot in range(int(start), int(end) + 1):
                    owners[slot] = int(master[1])
            return owners
        return {}

    def keyslot(self, key: str) -> int:
        return int(self._do(next(iter(self.nodes)), ("CLUSTER", "KEYSLOT", key)))

    def master_of(self, key: str) -> int:
        """The port of the master that serves `key`'s slot now."""
        return self.masters_by_slot()[self.keyslot(key)]

    def replicas_of(self, port: int) -> int:
        """How many replicas the master on `port` says it has."""
        info = ask(port, ("INFO", "replication"), self.password)
        return int(info.get("connected_slaves", 0)) if isinstance(info, dict) else 0

    def master_has_replica(self, key: str) -> bool:
        """The master serving `key`'s slot has a replica online (synced: one a WAIT counts, as
        the hub's readiness counts them)."""
        try:
            info = ask(self.master_of(key), ("INFO", "replication"), self.password)
        except (KeyError, redis.RedisError):
            return False
        return isinstance(info, dict) and online(info) >= 1

    def role(self, port: int) -> bytes | None:
        reply = ask(port, ("ROLE",), self.password)
        return reply[0] if isinstance(reply, list | tuple) and reply else None

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port`."""
        server = self.nodes.pop(port)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()

    def promoted(self, old: int, key: str) -> bool:
        """Another node than `old` serves `key`'s slot, says it is a master, and every live
        node says the cluster is ok."""
        try:
            port = self.master_of(key)
        except (KeyError, redis.RedisError):
            return False
        return port != old and self.role(port) == b"master" and self.ok_everywhere()

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, socket_timeout=5.0)

    def stop(self) -> None:
        for server in self.nodes.values():
            server.stop(5.0)
        self.nodes.clear()

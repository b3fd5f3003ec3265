"""hub.store.connect: ALERTHUB_REDIS_URL read (plain and Sentinel URLs, clear errors for bad
ones), clients built through Sentinel against real servers, the version floor, and a pipelined
connection that leaves a primary demoted under it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from hub.settings import redact_url
from hub.store.connect import (
    RedisAddress,
    RedisConnector,
    RedisUrlError,
    check_server_version,
    parse_redis_url,
    version_problem,
)
from hub.store.embedded import RedisServer, free_port, start_redis_server
from hub.store.redis_pipe import PipelinedRedis, pack_command
from tests.faults.sentinel import SERVICE, SentinelSet


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@db.example:6380/2", "unix:///tmp/r.sock"]
)
def test_plain_urls_pass_through(url: str) -> None:
    """redis://, rediss:// and unix:// URLs are left to redis-py, as before Sentinel."""
    assert parse_redis_url(url) == RedisAddress(url=url)


def test_a_sentinel_url_names_the_sentinels_service_db_and_credentials() -> None:
    """Hosts (default port 26379), service, db, the primary's user and password, and the
    sentinels' own credentials as options."""
    address = parse_redis_url(
        "redis+sentinel://hub:s%40cret@s1:26380,s2,[::1]:26381/ah-main/3"
        "?sentinel_password=sp&sentinel_username=watch&min_other_sentinels=1"
    )
    assert address.sentinels == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert (address.service, address.db) == ("ah-main", 3)
    assert (address.username, address.password) == ("hub", "s@cret")
    assert (address.sentinel_username, address.sentinel_password) == ("watch", "sp")
    assert address.min_other_sentinels == 1 and not address.tls and address.is_sentinel


def test_sentinel_url_defaults_and_tls() -> None:
    """db 0 and no credentials unless given; rediss+sentinel:// turns TLS on, with its options."""
    plain = parse_redis_url("redis+sentinel://127.0.0.1:26379/alerthub")
    assert (plain.db, plain.password, plain.sentinel_password, plain.tls) == (0, None, None, False)
    assert parse_redis_url("redis+sentinel://h/alerthub/").db == 0
    tls = parse_redis_url(
        "rediss+sentinel://:pw@h:26379/alerthub/0?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=none"
    )
    assert tls.tls and tls.password == "pw" and tls.username is None
    assert (tls.ssl_ca_certs, tls.ssl_cert_reqs) == ("/etc/ca.pem", "none")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:6379", "must start with redis://"),
        ("redis://h:port/0", "ALERTHUB_REDIS_URL: "),
        ("sentinel://h:26379/alerthub", "must start with redis://"),
        ("redis+sentinel://h:26379", "names the primary's service"),
        ("redis+sentinel://h:26379/", "names the primary's service"),
        ("redis+sentinel:///alerthub", "one or more host:port"),
        ("redis+sentinel://a,,b/alerthub", "one or more host:port"),
        ("redis+sentinel://h:port/alerthub", "must be a whole number"),
        ("redis+sentinel://h:70000/alerthub", "out of range"),
        ("redis+sentinel://h/alerthub/zero", "the database number must be a whole number"),
        ("redis+sentinel://h/alerthub/0/extra", "only /<service>/<db>"),
        ("redis+sentinel://h/alerthub?socket_timeout=1", "unknown option 'socket_timeout'"),
        ("redis+sentinel://h/alerthub?ssl_cert_reqs=none", "need rediss+sentinel://"),
        ("rediss+sentinel://h/alerthub?ssl_cert_reqs=maybe", "required or none"),
        ("redis+sentinel://h/alerthub?min_other_sentinels=-1", "must be a whole number"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, says: str) -> None:
    """Each malformed URL is refused with a message naming the variable and the fault."""
    with pytest.raises(RedisUrlError) as refused:
        parse_redis_url(url)
    assert says in str(refused.value) and "ALERTHUB_REDIS_URL" in str(refused.value)


def test_errors_and_logs_never_show_a_password() -> None:
    """A refused URL's message and the logged form of a Sentinel URL hide both passwords."""
    with pytest.raises(RedisUrlError) as refused:
        parse_redis_url("redis-sentinel://u:topsecret@h:26379/alerthub")
    assert "topsecret" not in str(refused.value)
    shown = redact_url("redis+sentinel://u:topsecret@h1,h2/alerthub/0?sentinel_password=alsosecret")
    assert "topsecret" not in shown and "alsosecret" not in shown
    assert shown.startswith("redis+sentinel://u:***@h1,h2/alerthub/0?sentinel_password=***")


@pytest.mark.parametrize(
    ("version", "ok"), [("6.2.0", True), ("6.2.14", True), ("7.0.15", True), ("6.0.16", False)]
)
def test_the_version_floor_is_redis_6_2(version: str, ok: bool) -> None:
    """6.2 and newer serve; an older server is refused with a message naming both versions."""
    problem = version_problem(version)
    assert (problem is None) == ok
    if not ok:
        assert problem is not None and version in problem and "6.2 or newer" in problem


async def test_the_suites_server_passes_the_version_check(redis_url: str) -> None:
    """The server the suite runs on (6.2 embedded, or Debian's 7 in CI's second pass) is
    accepted, and its version is reported."""
    client = RedisConnector.from_url(redis_url).client(max_connections=2)
    try:
        version = await check_server_version(client)
    finally:
        await client.aclose()
    assert version_problem(version) is None


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    deployment = SentinelSet(tmp_path_factory.mktemp("sentinel"), replicas=1).start()
    yield deployment
    deployment.stop()


async def test_clients_through_sentinel_reach_the_primary(sentinels: SentinelSet) -> None:
    """Both the redis-py client and the pipelined connection built from a redis+sentinel://
    URL write to the primary the sentinels name, and the write reaches the replica."""
    connector = RedisConnector.from_url(sentinels.url)
    client = connector.client(max_connections=4)
    pipe = connector.pipe()
    try:
        await client.set("through-sentinel", "client")
        connection = await pipe.connect()
        future = asyncio.get_running_loop().create_future()
        connection.send(pack_command(["SET", "through-pipe", "pipe"]), [future])
        assert await future == b"OK"
        primary = sentinels.primary_port()
        assert primary is not None
        assert connection.transport is not None
        assert connection.transport.get_extra_info("peername")[1] == primary
        assert (await client.info("server"))["tcp_port"] == primary
    finally:
        await pipe.close()
        await client.aclose()
        await connector.aclose()


@pytest.fixture(scope="module")
def guarded_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    """Data nodes with one password, sentinels with another."""
    deployment = SentinelSet(
        tmp_path_factory.mktemp("guarded"),
        replicas=1,
        password="data-pw",
        sentinel_password="sentinel-pw",
    ).start()
    yield deployment
    deployment.stop()


async def test_the_primarys_and_the_sentinels_passwords_are_kept_apart(
    guarded_sentinels: SentinelSet,
) -> None:
    """The URL's user:password reach the primary and `sentinel_password` the sentinels: both
    clients write; a wrong sentinel password finds no primary (a ConnectionError, so a 503)."""
    url = guarded_sentinels.url
    assert ":data-pw@" in url and "sentinel_password=sentinel-pw" in url
    connector = RedisConnector.from_url(url)
    client = connector.client(max_connections=2)
    pipe = connector.pipe()
    try:
        await client.set("guarded", "client")
        connection = await pipe.connect()
        future = asyncio.get_running_loop().create_future()
        connection.send(pack_command(["GET", "guarded"]), [future])
        assert await future == b"client"
    finally:
        await pipe.close()
        await client.aclose()
        await connector.aclose()
    wrong = RedisConnector.from_url(url.replace("sentinel-pw", "not-it"))
    client = wrong.client(max_connections=2)
    try:
        with pytest.raises(RedisConnectionError):
            await client.ping()
        with pytest.raises(RedisConnectionError):
            await wrong.pipe().connect()
    finally:
        await client.aclose()
        await wrong.aclose()


async def test_no_sentinel_answering_is_a_connection_error(tmp_path: Path) -> None:
    """With no sentinel up, both clients fail with redis-py's ConnectionError (a 503), not a
    hang and not another error."""
    connector = RedisConnector.from_url(f"redis+sentinel://127.0.0.1:{free_port()}/{SERVICE}")
    client = connector.client(max_connections=2)
    try:
        with pytest.raises(RedisConnectionError):
            await client.ping()
        with pytest.raises(RedisConnectionError):
            await connector.pipe().connect()
    finally:
        await client.aclose()
        await connector.aclose()


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    first = start_redis_server(tmp_path / "a", port=free_port(), appendonly=False)
    second = start_redis_server(tmp_path / "b", port=free_port(), appendonly=False)
    yield first, second
    first.stop()
    second.stop()


async def test_a_pipe_leaves_a_primary_demoted_under_it(
    two_servers: tuple[RedisServer, RedisServer],
) -> None:
    """When the server under a pipelined connection becomes a replica (a failover whose
    sentinels did not cut its clients), the READONLY reply reaches its caller and the next call
    opens a new connection instead of writing to the replica again."""
    first, second = two_servers
    pipe = PipelinedRedis(first.url, leave_demoted=True)
    try:
        connection = await pipe.connect()
        sync = redis.Redis.from_url(first.url)
        sync.replicaof("127.0.0.1", int(second.url.rsplit(":", 1)[1].split("/")[0]))
        sync.close()
        future = asyncio.get_running_loop().create_future()
        connection.send(pack_command(["SET", "k", "v"]), [future])
        reply = await future
        assert str(reply).startswith("READONLY")
        assert pipe.ready() is None
        assert await pipe.connect() is not connection
    finally:
        await pipe.close()


async def test_the_settings_url_reaches_redis_py_unchanged(redis_url: str) -> None:
    """A plain URL builds the same blocking-pool client as before (same server, same db)."""
    client = RedisConnector.from_url(redis_url).client(max_connections=2)
    try:
        assert await client.ping()
        assert isinstance(client, Redis)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "command",
    [("serve", "--port", "0"), ("serve", "--port", "0", "--workers", "2"), ("nodes", "list")],
)
def test_a_bad_url_stops_the_cli_with_one_line_and_exit_2(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    """`serve` and `nodes` with an unreadable ALERTHUB_REDIS_URL exit 2 with one line that
    says what is wrong, and no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "hub", *command],
        env={**os.environ, "ALERTHUB_REDIS_URL": "redis+sentinel://u:pw@127.0.0.1:1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("alerthub: ALERTHUB_REDIS_URL: a Sentinel URL names"), lines
    assert "Traceback" not in done.stderr and "pw" not in done.stderr

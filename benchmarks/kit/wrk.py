"""The load generator of `benchmarks/ingest.py --generator wrk`: wrk (a C load generator,
Debian's `wrk` package) with benchmarks/kit/wrk_post.lua, posting the same unique alerts as the
Python generator.

Why a second generator: the Python one spends about 150 µs of its own core per request, so it
cannot post faster than about 8,000 alerts/s on this project's 2-core VM, and the bare handler
then waits for it (the bare server ran at 66% of its core, the client at 100%). wrk spends a
tenth of that, so the bare handler's figure becomes its own and the hub/bare ratio stops being
flattered by a slow baseline. wrk reports latency percentiles, not each request, so the split
of the p99 by Redis rewrites is left out with it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import resource
import secrets
import shutil
import time
from pathlib import Path

from .load import poll_rewrites
from .measurement import cpu_seconds

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "wrk_post.lua"


class WrkMissing(RuntimeError):
    """wrk is not installed."""


def find_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing("--generator wrk needs wrk on PATH (Debian: apt-get install wrk)")
    return found


@dataclasses.dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    non_2xx: int
    socket_errors: int
    not_created: int
    client_cpu_s: float


def parse_result(stdout: str, client_cpu_s: float) -> WrkRun:
    """The RESULT line that wrk_post.lua's done() prints."""
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"wrk printed no RESULT line:\n{stdout[-2000:]}")
    fields = {k: int(v) for k, v in (item.split("=") for item in lines[-1].split()[1:])}
    return WrkRun(
        requests=fields["requests"],
        seconds=fields["duration_us"] / 1e6,
        p50_s=fields["p50_us"] / 1e6,
        p90_s=fields["p90_us"] / 1e6,
        p99_s=fields["p99_us"] / 1e6,
        max_s=fields["max_us"] / 1e6,
        non_2xx=fields["non2xx"],
        socket_errors=sum(fields[k] for k in ("connect", "read", "write", "timeout")),
        not_created=fields["not_created"],
        client_cpu_s=client_cpu_s,
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_wrk(
    url: str, token: str | None, template: Path, connections: int, seconds: float
) -> WrkRun:
    """One wrk invocation of `seconds` on `connections` connections (one thread), with a nonce
    of its own so that its alerts are new to the hub."""
    env = {
        **os.environ,
        "TEMPLATE": str(template),
        "NONCE": secrets.token_hex(3),
        "TOKEN": token or "",
    }
    before = _children_cpu_s()
    process = await asyncio.create_subprocess_exec(
        find_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(SCRIPT),
        url,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{stdout.decode()[-2000:]}")
    return parse_result(stdout.decode(), _children_cpu_s() - before)


async def drive_wrk(
    url: str,
    token: str | None,
    template: Path,
    connections: int,
    warmup: float,
    duration: float,
    watch: dict[str, int],
    redis_url: str | None = None,
) -> tuple[WrkRun, dict[str, float], list[tuple[float, bool]]]:
    """A warm-up wrk run, then the measured one. Returns the measured run, the CPU seconds the
    watched processes (and wrk, as "client") spent in it, and the rewrite polls of its window."""
    if warmup > 0:
        await run_wrk(url, token, template, connections, warmup)
    polls: list[tuple[float, bool]] = []
    first = {name: cpu_seconds(pid) for name, pid in watch.items()}
    poller = asyncio.ensure_future(poll_rewrites(redis_url, time.perf_counter() + duration, polls))
    measured = await run_wrk(url, token, template, connections, duration)
    cpu = {name: cpu_seconds(pid) - first[name] for name, pid in watch.items()}
    cpu["client"] = measured.client_cpu_s
    await poller
    return measured, cpu, polls

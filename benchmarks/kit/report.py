"""The JSON results: where they go, the machine they were measured on, and the options every
benchmark takes (--quick, --out)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis

import hub
from hub.store.embedded import find_redis_server

from .processes import ROOT

RESULTS = ROOT / "benchmarks" / "results"


def utc_stamp(when: dt.datetime | None = None) -> str:
    return (when or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")


def add_standard_args(parser: argparse.ArgumentParser, quick: str) -> None:
    """--quick (`quick` says what it runs) and --out, which every benchmark takes."""
    parser.add_argument("--quick", action="store_true", help=f"a smoke run of seconds: {quick}")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON result path (default: benchmarks/results/)"
    )


def write_json(
    report: dict[str, Any], out: Path | None, name: str, stamp: str | None = None
) -> Path:
    """Write `report` to `out`, or to benchmarks/results/<name>-<stamp or UTC time>.json; the
    path."""
    path = out or RESULTS / f"{name}-{stamp or utc_stamp()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    option = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
    path.write_bytes(orjson.dumps(report, option=option) + b"\n")
    return path


def git(*argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def hub_code() -> dict[str, Any]:
    """The commit the hub process starts from, and hub/ files that differ from it: the hub is
    run from the working tree, which may change between runs."""
    changed = git("status", "--porcelain", "--", "hub")
    return {"commit": git("rev-parse", "--short", "HEAD"), "hub_changes": changed.splitlines()}


def machine() -> dict[str, Any]:
    """The machine and the versions that the figures depend on, with the load average."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = subprocess.run(
        [find_redis_server(), "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "redis_py": redis.__version__,
        "orjson": orjson.__version__,
        "alerthub": hub.__version__,
        "redis_server": version,
    }

"""py-spy for benchmarks/fanout.py: sample the hub process while a scenario runs, then sum the
collapsed stacks into the hub functions that took the most samples.

py-spy leaves idle samples out by default, so `samples / (rate x seconds)` is roughly the share of
one core the hub's main thread was busy, and a function's share of the samples is its share of
that busy time (inclusive: the function or anything it called)."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 100
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def find_py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    if beside.is_file():
        return str(beside)
    return shutil.which("py-spy")


class HubProfiler:
    """`py-spy record` of one process, from start() until stop()."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        py_spy = find_py_spy()
        if py_spy is None:
            return False
        argv = [py_spy, "record", "--pid", str(self.pid), "--rate", str(RATE), "--format"]
        # Blocking (the default): py-spy pauses the hub for each sample, which costs it ~1% at
        # this rate, but gives whole stacks; --nonblocking lost a fifth of them here.
        argv += ["raw", "--output", str(self.out)]
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with self.out.with_suffix(".log").open("wb") as log:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        return True

    def stop(self) -> None:
        """SIGINT makes py-spy write its output and exit."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def frame_name(frame: str) -> str:
    """`function (path/file.py:line)` as `path:function`, the path from hub/, aiohttp/ etc."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for root in ("hub/", "aiohttp/", "redis/", "asyncio/", "structlog/", "uvloop/"):
        if path.startswith(root):
            break
        where = path.rfind("/" + root)
        if where >= 0:
            path = path[where + 1 :]
            break
    else:
        path = Path(path).name
    return f"{path}:{match['func']}"


def summarise(raw: Path, seconds: float, top: int = 15) -> dict[str, Any]:
    """Busy share of one core, and the top functions by inclusive and by self samples."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    with contextlib.suppress(OSError), raw.open() as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            names = [frame_name(f) for f in stack.split(";") if f]
            for name in set(names):
                inclusive[name] += count
            if names:
                leaf[names[-1]] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    hub_inclusive = Counter({k: v for k, v in inclusive.items() if k.startswith("hub/")})
    return {
        "samples": total,
        "busy_pct_of_core": round(100 * total / (RATE * seconds), 1) if seconds > 0 else None,
        "hub_functions_inclusive_pct": share(hub_inclusive) if total else [],
        "self_pct": share(leaf) if total else [],
        "raw": str(raw),
    }

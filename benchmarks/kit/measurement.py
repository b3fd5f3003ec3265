"""Figures from raw samples: percentiles, medians over runs, CPU time of processes."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class CpuMeter:
    """User + system CPU seconds of some processes (all their threads) between start and stop."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.first: dict[str, float] = {}
        self.started = 0.0

    def _sample(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def start(self) -> None:
        self.first = self._sample()
        self.started = time.monotonic()

    def stop(self) -> tuple[dict[str, float], float]:
        """CPU seconds per process since start(), and the wall seconds."""
        last = self._sample()
        return {k: last[k] - self.first[k] for k in last}, time.monotonic() - self.started


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile of sorted values; NaN when there are none."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2) if not math.isnan(seconds) else math.nan


def spread(values: Iterable[float]) -> dict[str, float]:
    """p50, p90, p99, max and min of latencies in seconds, in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {k: math.nan for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "min_ms")}
    return {
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p90_ms": ms(percentile(ordered, 0.90)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "max_ms": ms(ordered[-1]),
        "min_ms": ms(ordered[0]),
    }


def median_or_nan(values: Iterable[float], digits: int = 2) -> float:
    """The median of the values that are not NaN, rounded; NaN when none is."""
    kept = [v for v in values if not math.isnan(v)]
    return round(statistics.median(kept), digits) if kept else math.nan

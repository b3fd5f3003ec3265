"""How many requests the security suite sent that were meant to be refused, by kind, for the
closing note. Each test adds what it sent; conftest.py prints the totals after the run."""

from __future__ import annotations

from collections import Counter

REFUSED: Counter[str] = Counter()


def refused(kind: str, count: int = 1) -> None:
    REFUSED[kind] += count

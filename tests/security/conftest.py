"""Prints how many bad inputs the security suite tried (see tally.py)."""

from __future__ import annotations

from typing import Any

from tests.security.tally import REFUSED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REFUSED:
        return
    terminalreporter.section("security suite: requests meant to be refused")
    for kind, count in sorted(REFUSED.items()):
        terminalreporter.write_line(f"{kind}: {count}")
    terminalreporter.write_line(f"total: {REFUSED.total()}")

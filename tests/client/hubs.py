"""Shared bits of the HubClient tests: the hub's URL, clients per node, waiting on a feed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from alerthub_client import HubClient
from tests.conftest import Api


def hub_url(api: Api) -> str:
    return str(api.client.make_url("/")).rstrip("/")


def client_for(api: Api, node: str, url: str | None = None) -> HubClient:
    return HubClient(url or hub_url(api), api.tokens[node], timeout_s=10.0)


async def until(
    probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], within: float = 10.0
) -> Any:
    """probe() again and again until done(its value); AssertionError after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value {value!r}")
        await asyncio.sleep(0.02)

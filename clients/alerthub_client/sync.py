"""SyncHubClient: HubClient's methods, blocking, for scripts and notebooks.

An event loop runs in a daemon thread of its own and each call waits for its coroutine there,
so the wrapper also works where an event loop is already running in the calling thread (a
Jupyter notebook), and events() can hand out one event at a time as a plain generator."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from alerthub_client.client import (
    BATCH_RETRY_FOR_S,
    MAX_BATCH,
    MAX_BATCH_BYTES,
    Event,
    HubClient,
    Page,
)

T = TypeVar("T")


class SyncHubClient:
    """`with SyncHubClient("http://127.0.0.1:8080", token) as hub: hub.post_alert(alert)`"""

    def __init__(self, base_url: str, token: str | None = None, *, timeout_s: float = 30.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="alerthub-client", daemon=True
        )
        self._thread.start()
        try:
            self._hub = self._run(_make(base_url, token, timeout_s))
        except BaseException:
            self._stop_loop()
            raise
        # Never closed (no `with`, no close()): closed anyway when dropped or at exit, so no
        # thread, loop or "Unclosed client session" is left behind. Holds no reference to self.
        self._finalizer = weakref.finalize(self, _shut, self._loop, self._thread, self._hub)

    def __enter__(self) -> SyncHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()  # runs once; later calls do nothing

    def _stop_loop(self) -> None:
        _stop(self._loop, self._thread)

    def _run(self, coro: Awaitable[T]) -> T:
        future = asyncio.run_coroutine_threadsafe(_awaited(coro), self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C while waiting: stop the coroutine too, not only the wait.
            future.cancel()
            raise

    def _iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """An async iterator as a plain generator; closing the generator closes it."""
        try:
            while True:
                try:
                    yield self._run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
                    self._run(aclose())

    @property
    def base_url(self) -> str:
        return self._hub.base_url

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return self._run(
            self._hub.request(method, path, json=json, data=data, headers=headers, params=params)
        )

    def post_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        return self._run(self._hub.post_alert(alert))

    def post_alerts(
        self,
        alerts: Iterable[dict[str, Any]],
        *,
        batch_size: int = MAX_BATCH,
        on_progress: Callable[[int], None] | None = None,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        retry_for_s: float = BATCH_RETRY_FOR_S,
    ) -> list[dict[str, Any]]:
        """on_progress runs in the client's loop thread, not the caller's."""
        return self._run(
            self._hub.post_alerts(
                alerts,
                batch_size=batch_size,
                on_progress=on_progress,
                max_batch_bytes=max_batch_bytes,
                retry_for_s=retry_for_s,
            )
        )

    def get_alert(self, hub_id: str) -> dict[str, Any]:
        return self._run(self._hub.get_alert(hub_id))

    def list_alerts(self, **filters: Any) -> Page:
        """kind, target_country, since, limit, after: as HubClient.list_alerts."""
        return self._run(self._hub.list_alerts(**filters))

    def iter_alerts(self, **filters: Any) -> Iterator[dict[str, Any]]:
        return self._iterate(self._hub.iter_alerts(**filters))

    def retract(self, hub_id: str, reason: str) -> dict[str, Any]:
        return self._run(self._hub.retract(hub_id, reason))

    def subscribe(
        self, filter: dict[str, Any] | None = None, *, webhook_url: str | None = None
    ) -> dict[str, Any]:
        return self._run(self._hub.subscribe(filter, webhook_url=webhook_url))

    def list_subscriptions(self) -> list[dict[str, Any]]:
        return self._run(self._hub.list_subscriptions())

    def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        return self._run(self._hub.get_subscription(subscription_id))

    def update_subscription(self, subscription_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._run(self._hub.update_subscription(subscription_id, patch))

    def delete_subscription(self, subscription_id: str) -> None:
        self._run(self._hub.delete_subscription(subscription_id))

    def pull(self, subscription_id: str, *, after: str | None = None, limit: int = 100) -> Page:
        return self._run(self._hub.pull(subscription_id, after=after, limit=limit))

    def events(
        self, subscription_id: str, *, last_event_id: str | None = None, reconnect: bool = True
    ) -> Iterator[Event]:
        """A plain generator of the subscription's events (see HubClient.events); close it, or
        leave its `for` loop, to close the stream."""
        return self._iterate(
            self._hub.events(subscription_id, last_event_id=last_event_id, reconnect=reconnect)
        )

    def create_node(self, node: dict[str, Any]) -> dict[str, Any]:
        return self._run(self._hub.create_node(node))

    def list_nodes(self) -> list[dict[str, Any]]:
        return self._run(self._hub.list_nodes())

    def revoke_node(self, node_id: str) -> None:
        self._run(self._hub.revoke_node(node_id))

    def status(self) -> dict[str, Any]:
        return self._run(self._hub.status())

    def ready(self) -> bool:
        return self._run(self._hub.ready())


def _shut(loop: asyncio.AbstractEventLoop, thread: threading.Thread, hub: HubClient) -> None:
    """Close the client's session in its loop, then stop the loop and its thread."""
    if loop.is_closed():
        return
    if threading.current_thread() is thread:  # dropped inside a callback: cannot wait here
        loop.call_soon(loop.stop)
        return
    try:
        if thread.is_alive():
            asyncio.run_coroutine_threadsafe(hub.close(), loop).result(timeout=10)
    finally:
        _stop(loop, thread)


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if loop.is_closed():
        return
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    if not thread.is_alive():
        loop.close()


async def _make(base_url: str, token: str | None, timeout_s: float) -> HubClient:
    return HubClient(base_url, token, timeout_s=timeout_s)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
